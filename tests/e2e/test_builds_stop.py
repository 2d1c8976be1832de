"""Cancel and timeout with real buildah: a `RUN sleep 300` build on a real Celery worker is stopped,
ends `cancelled` (through the API) or `timed_out` (a dedicated hub with HUB_BUILD_TIMEOUT_SECONDS=20),
and no process of that build is left: nothing whose command line holds the build's workspace path,
nor the RUN step's shell."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.e2e.test_builds import Hub, git, link_with_hook, user_with_repository  # noqa: E402
from tests.live import (  # noqa: E402
    REPO_ROOT,
    LiveHub,
    collect_static,
    free_port,
    hub_environment,
    private_broker,
    start_hub,
    wait_until,
    wait_until_healthy,
)

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")]

STOP_DEADLINE = 60  # from the cancel request (or the timeout) to the final state
TIMEOUT_SECONDS = 20


@pytest.fixture(scope="module")
def local_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("git-sources").resolve()


@pytest.fixture(scope="module")
def test_database(django_db_setup):
    """The session's test database (tests/conftest.py), which the hubs started here serve."""


def _hub(local_root, artifacts_dir, work_dir: Path, **extra):
    work_dir.mkdir(parents=True, exist_ok=True)
    return start_hub(artifacts_dir, HUB_BUILDS_ENABLED="1", HUB_BUILD_LOCAL_ROOTS=str(local_root),
                     HUB_BUILD_WORK_DIR=str(work_dir), HUB_BUILD_DISPATCH_SECONDS="2", **extra)


# One hub at a time: hubs started by the harness share the data directory, hence the filesystem broker,
# so a second hub's worker could pick up the other's build (with the other timeout).
@pytest.fixture
def cancel_hub(test_database, local_root, artifacts_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("cancel-work")
    hub = _hub(local_root, artifacts_dir, work_dir, HUB_BUILD_TIMEOUT_SECONDS="600")
    hub.work_dir = work_dir
    yield hub
    hub.stop()


@pytest.fixture
def timeout_hub(test_database, local_root, artifacts_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("timeout-work")
    hub = _hub(local_root, artifacts_dir, work_dir, HUB_BUILD_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    hub.work_dir = work_dir
    yield hub
    hub.stop()


def processes_matching(*needles: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose command line contains one of `needles`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines()
                          if line.startswith("State:")), "")
        except OSError:
            continue
        if "Z (zombie)" in state:
            continue
        if any(needle in cmdline for needle in needles):
            found.append((int(entry.name), cmdline.strip()))
    return found


def sleeping_build(hub_process, live_user, committed, local_root, test_images, tmp_path):
    """Push a base image, link a local source, commit a `RUN sleep 300` Dockerfile (the shipped
    post-commit hook triggers the build); returns (hub, repo, marker) once a build exists."""
    clients = ContainerClients(tmp_path / "clients", [hub_process.host])
    user = user_with_repository(live_user, committed, clients, test_images.small, hub_process.host, "slow")
    hub = Hub(hub_process, user.username)
    repo = f"{user.username}/slow"
    source = local_root / f"slow-{uuid.uuid4().hex[:8]}"
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    link_with_hook(hub, repo, str(source), source, source / ".git" / "hooks", "post-commit")
    marker = f"wharf-stop-{uuid.uuid4().hex}"
    (source / "Dockerfile").write_text(f"FROM {hub_process.host}/{user.username}/base:v1\n"
                                       f"RUN sleep 300 && echo {marker}\n")
    git(source, "add", "Dockerfile")
    git(source, "commit", "-q", "-m", "a slow build")
    return hub, repo, marker


def workspace_needle(hub_process, build_id: int) -> str:
    return f"{hub_process.work_dir}/wharf-build-{build_id}-"


def wait_for_the_run_step(hub, repo: str, hub_process, marker: str) -> dict:
    """The build is running its `RUN sleep 300` under buildah: returns the build."""
    [build] = hub.wait_for_build(repo, final=False)

    def sleeping():
        current = hub.api("GET", f"{repo}/builds/{build['id']}/").json()
        assert current["state"] not in ("success", "failed", "cancelled", "timed_out"), current["log"]
        return current if processes_matching(marker) else None

    current = wait_until(sleeping, timeout=180, interval=0.5, message="the RUN step to start")
    assert processes_matching(workspace_needle(hub_process, build["id"])), "no buildah process in the workspace"
    return current


def assert_nothing_left(hub_process, build_id: int, marker: str) -> None:
    needle = workspace_needle(hub_process, build_id)
    wait_until(lambda: not processes_matching(needle, marker), timeout=15, interval=0.5,
               message=f"the build's processes to go: {processes_matching(needle, marker)}")
    assert not list(hub_process.work_dir.glob(f"wharf-build-{build_id}-*")), "the workspace was not removed"


def test_cancel_stops_buildah(cancel_hub, live_user, committed, local_root, test_images, tmp_path):
    hub, repo, marker = sleeping_build(cancel_hub, live_user, committed, local_root, test_images, tmp_path)
    build = wait_for_the_run_step(hub, repo, cancel_hub, marker)
    started = time.monotonic()
    response = hub.api("POST", f"{repo}/builds/{build['id']}/cancel")
    assert response.status_code in (200, 202), response.text

    def ended():
        current = hub.api("GET", f"{repo}/builds/{build['id']}/").json()
        return current if current["state"] in ("success", "failed", "cancelled", "timed_out") else None

    final = wait_until(ended, timeout=STOP_DEADLINE, interval=0.5, message="the cancelled build to end")
    assert final["state"] == "cancelled", final["log"]
    assert time.monotonic() - started < STOP_DEADLINE
    assert "build cancelled" in final["log"]
    assert_nothing_left(cancel_hub, build["id"], marker)


def test_timeout_stops_buildah(timeout_hub, live_user, committed, local_root, test_images, tmp_path):
    hub, repo, marker = sleeping_build(timeout_hub, live_user, committed, local_root, test_images, tmp_path)
    [build] = hub.wait_for_build(repo, final=False)

    def ended():
        current = hub.api("GET", f"{repo}/builds/{build['id']}/").json()
        return current if current["state"] in ("success", "failed", "cancelled", "timed_out") else None

    final = wait_until(ended, timeout=TIMEOUT_SECONDS + STOP_DEADLINE, interval=0.5,
                       message="the build to time out")
    assert final["state"] == "timed_out", final["log"]
    assert f"timed out after {TIMEOUT_SECONDS}" in final["log"]
    assert marker in final["log"] or "sleep 300" in final["log"]  # it got as far as the RUN step
    assert_nothing_left(timeout_hub, build["id"], marker)


SERVE_STOP_DEADLINE = 10.0


@pytest.fixture
def served_hub(test_database, local_root, artifacts_dir, tmp_path_factory):
    """`manage.py serve` (what `make run` runs) in a process group of its own, with builds on."""
    work_dir = tmp_path_factory.mktemp("serve-work")
    port = free_port()
    extra = {**private_broker(artifacts_dir), "HUB_BUILDS_ENABLED": "1", "HUB_BUILD_LOCAL_ROOTS": str(local_root),
             "HUB_BUILD_WORK_DIR": str(work_dir), "HUB_BUILD_DISPATCH_SECONDS": "2",
             "HUB_BUILD_TIMEOUT_SECONDS": "600"}
    env = hub_environment(port, **extra)
    collect_static(env)
    log_path = artifacts_dir / f"serve-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    hub = LiveHub(port=port, process=process, log_path=log_path, extra=extra)
    hub.work_dir = work_dir
    try:
        wait_until_healthy(hub.url, process, log_path)
        yield hub
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_term_to_the_serve_process_group_ends_running_builds(served_hub, live_user, committed, local_root,
                                                             test_images, tmp_path):
    hub, repo, marker = sleeping_build(served_hub, live_user, committed, local_root, test_images, tmp_path)
    build = wait_for_the_run_step(hub, repo, served_hub, marker)
    started = time.monotonic()
    os.killpg(served_hub.process.pid, signal.SIGTERM)
    needle = workspace_needle(served_hub, build["id"])

    def stopped():
        return served_hub.process.poll() is not None and not processes_matching(needle, marker)

    wait_until(stopped, timeout=SERVE_STOP_DEADLINE + 20, interval=0.2,
               message=f"serve and the build to stop: {processes_matching(needle, marker)}")
    assert time.monotonic() - started < SERVE_STOP_DEADLINE, time.monotonic() - started
