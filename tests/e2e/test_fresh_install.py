"""A fresh copy of the working tree runs with `make run` from a virtualenv built from requirements.txt
alone (no dev requirements), serves a real push and pull, and stops within 10 s when its process
group gets SIGTERM, as systemd and container runtimes send it.

This catches a module the site, its workers or manage.py import at runtime that only the dev
requirements install (it has happened: `requests`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.live import REPO_ROOT, free_port, log_tail, wait_until  # noqa: E402

pytest_plugins = ["tests.e2e.images"]
pytestmark = [pytest.mark.e2e]

STOP_DEADLINE = 10.0
START_TIMEOUT = 300.0  # a new virtualenv: pip from its cache (or the package index) takes most of it
USERNAME, PASSWORD = "fresh", "a fresh install's password 1"


def copy_working_tree(destination: Path) -> None:
    """The files git tracks plus the new ones it does not ignore: what a clone of this tree would hold,
    uncommitted changes included (no .venv, no data, no caches)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def plain_environment(**extra: str) -> dict[str, str]:
    """A login shell's environment: no settings module, database or Redis of the test run, and no
    virtualenv of ours on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p != venv_bin)
    keep = {name: value for name, value in os.environ.items()
            if name in ("HOME", "LANG", "USER", "LOGNAME", "TMPDIR") or name.startswith("PIP_")}
    return {**keep, "PATH": path, **extra}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_from_a_fresh_copy_serves_a_push_and_pull_and_stops_on_sigterm(tmp_path, test_images):
    tree, data_dir = tmp_path / "wharf", tmp_path / "data"
    copy_working_tree(tree)
    port = free_port()
    env = plain_environment(PORT=str(port), HUB_DATA_DIR=str(data_dir), HUB_PUBLIC_URL=f"http://127.0.0.1:{port}")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(["make", "run"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    pgid = make.pid
    try:
        def registry_answers() -> bool:
            assert make.poll() is None, f"make run exited with {make.returncode}:\n{log_tail(log_path)}"
            return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=5).status_code == 401

        try:
            wait_until(registry_answers, timeout=START_TIMEOUT, interval=0.5, message="GET /v2/ to answer 401")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_tail(log_path)}") from None
        assert "==> Installing the Python packages of requirements.txt" in log_path.read_text(errors="replace")
        assert not (tree / ".venv" / ".dev-deps").exists()

        # The contract: `.venv/bin/python manage.py shell` works against the same data dir.
        subprocess.run(
            [str(tree / ".venv" / "bin" / "python"), "manage.py", "shell", "-c",
             "from accounts.models import User; "
             f"User.objects.create_user({USERNAME!r}, 'fresh@example.com', {PASSWORD!r})"],
            cwd=tree, env=env, check=True, capture_output=True, timeout=120)

        host = f"127.0.0.1:{port}"
        clients = ContainerClients(tmp_path / "clients", [host])
        image = test_images.small
        clients.skopeo_push(image, f"{host}/{USERNAME}/app:v1", creds=(USERNAME, PASSWORD))
        pulled = tmp_path / "pulled"
        clients.skopeo_pull_dir(f"{host}/{USERNAME}/app:v1", pulled, creds=(USERNAME, PASSWORD))
        for digest in image.layer_digests:
            assert (pulled / digest.split(":")[1]).exists(), f"layer {digest} was not pulled"
    finally:
        if make.poll() is None and group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
        started = time.monotonic()
        while time.monotonic() - started < STOP_DEADLINE + 20:
            make.poll()  # reap make itself, or it stays in the group as a zombie
            if not group_alive(pgid):
                break
            time.sleep(0.1)
        stopped_after = time.monotonic() - started
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    assert stopped_after <= STOP_DEADLINE, (
        f"the process group took {stopped_after:.1f} s to exit after SIGTERM:\n{log_tail(log_path)}")
    # make itself dies of the TERM it was sent (after waiting for its child); serve exits 0.
    assert make.returncode in (0, -signal.SIGTERM), log_tail(log_path)
    assert "Traceback" not in log_path.read_text(errors="replace"), log_tail(log_path)
