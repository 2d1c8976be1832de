"""The `make run` contract: `manage.py serve` on a fresh data dir, after `migrate` and `collectstatic`,
runs gunicorn and a Celery worker with beat, restarts a child that dies, and SIGTERM (to serve, or to
its whole process group) stops every process it started within 10 seconds."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.hub.support import hub_env, kill_group, manage, process_group_members, run_django
from tests.live import REPO_ROOT, GiveUp, free_port, wait_until

pytestmark = pytest.mark.e2e

STOP_DEADLINE = 10  # seconds from the TERM to the whole process group until every process is gone


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def serve(root: Path, *, prepare: bool = True, **extra: str) -> Served:
    """What `make run` does, with test values: migrate, collectstatic, then `serve` in its own group."""
    port = free_port()
    data_dir = root / "data"
    env = hub_env(data_dir, PORT=str(port), HUB_PUBLIC_URL=f"http://127.0.0.1:{port}",
                  HUB_WEB_WORKERS="1", HUB_WORKER_CONCURRENCY="1", HUB_ACCESS_LOG="", **extra)
    if prepare:
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    log_path = root / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"], cwd=REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    served = Served(process, port, data_dir, env, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"serve exited:\n{served.log()}")
        return requests.get(f"{served.url}/healthz", timeout=2).status_code == 200

    try:
        wait_until(answers, timeout=60, message="serve to answer /healthz")
    except BaseException:
        kill_group(process.pid)
        raise
    return served


def stop(served: Served, timeout: float = 40) -> list[int]:
    """SIGTERM to `serve` alone; return the PIDs of its group still alive at the deadline."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    try:
        wait_until(lambda: not process_group_members(served.process.pid), timeout=timeout, interval=0.2,
                   message="every process of serve's group to exit")
    except AssertionError:
        return process_group_members(served.process.pid)
    finally:
        try:
            served.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        kill_group(served.process.pid)
    return []


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    served = serve(tmp_path_factory.mktemp("serve"))
    yield served
    stop(served)


def test_serve_answers_healthz(served):
    assert requests.get(f"{served.url}/healthz", timeout=5).json() == {"status": "ok"}


def test_serve_is_ready(served):
    response = requests.get(f"{served.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text


def test_serve_serves_collected_static_files(served):
    response = requests.get(f"{served.url}/static/admin/css/base.css", timeout=5)
    assert response.status_code == 200


def test_data_dir_holds_the_sqlite_database(served):
    assert (served.data_dir / "hub.sqlite3").stat().st_size > 0


def test_data_dir_holds_a_private_generated_secret_key(served):
    key = served.data_dir / "keys" / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) >= 50


@pytest.mark.parametrize("folder", ["queue", "processing", "malformed", "processed", "control"])
def test_data_dir_holds_the_celery_folders(served, folder):
    assert (served.data_dir / "celery" / folder).is_dir()


def test_serve_runs_a_celery_worker(served):
    token = uuid.uuid4().hex
    run_django(served.env, f"from hub.tasks import ping_task\nping_task.delay({token!r})\n")
    probe = f"from hub.tasks import ping_result\nprint(ping_result({token!r}) is not None)\n"
    wait_until(lambda: run_django(served.env, probe).stdout.strip().endswith("True"), timeout=45, interval=0.5,
               message="serve's worker to run a ping")


def test_serve_runs_beat(served):
    wait_until(lambda: list((served.data_dir / "celery").glob("beat-schedule*")), timeout=30,
               message="beat to write its schedule file in the data dir")


def test_shell_sees_a_user_who_signed_up_on_the_server(served):
    username = f"u{uuid.uuid4().hex[:12]}"
    browser = requests.Session()
    page = browser.get(f"{served.url}/accounts/signup/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = browser.post(
        f"{served.url}/accounts/signup/",
        data={"csrfmiddlewaretoken": csrf, "username": username, "email": f"{username}@example.com",
              "password1": "Quay-Pulp-Harbor-42", "password2": "Quay-Pulp-Harbor-42"},
        headers={"Referer": f"{served.url}/accounts/signup/"}, allow_redirects=False, timeout=20,
    )
    assert response.status_code == 302, response.text[-2000:]
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         f"from accounts.models import User; print(User.objects.filter(username={username!r}).count())"],
        cwd=REPO_ROOT, env=served.env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "1"


def command_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def program_of(pid: int) -> bytes:
    """The program a Python process runs: b"gunicorn", b"celery", b"manage.py"."""
    arguments = command_of(pid).split(b"\0")
    return arguments[1].rpartition(b"/")[2] if len(arguments) > 1 else b""


def serve_child(served: Served, program: bytes) -> int:
    """The PID of serve's own child running `program` (gunicorn, or the celery worker)."""
    [pid] = [pid for pid in process_group_members(served.process.pid)
             if program_of(pid) == program and parent_of(pid) == served.process.pid]
    return pid


def test_serve_restarts_gunicorn_when_it_dies(data_dir):
    served = serve(data_dir.parent, prepare=False)
    try:
        gunicorn = serve_child(served, b"gunicorn")
        os.kill(gunicorn, signal.SIGKILL)
        exited = re.compile(rf"serve: gunicorn \(pid {gunicorn}\) exited with signal SIGKILL; restarting it in 1 s")
        wait_until(lambda: exited.search(served.log_path.read_text()), timeout=20, interval=0.2,
                   message=f"serve to notice gunicorn's death:\n{served.log()}")
        wait_until(lambda: "serve: gunicorn restarted" in served.log_path.read_text(), timeout=20, interval=0.2,
                   message=f"serve to start gunicorn again:\n{served.log()}")
        wait_until(lambda: requests.get(f"{served.url}/healthz", timeout=2).status_code == 200, timeout=30,
                   message="the restarted gunicorn to answer")
        assert serve_child(served, b"gunicorn") != gunicorn
        assert served.process.poll() is None
    finally:
        assert stop(served) == []
    assert served.process.returncode == 0


def test_serve_restarts_the_celery_worker_which_then_runs_tasks(data_dir):
    served = serve(data_dir.parent, prepare=False)
    try:
        worker = serve_child(served, b"celery")
        os.kill(worker, signal.SIGKILL)  # its pool process and beat are left to serve, which ends them
        wait_until(lambda: "serve: celery worker restarted" in served.log_path.read_text(), timeout=20,
                   interval=0.2, message=f"serve to start the worker again:\n{served.log()}")
        token = uuid.uuid4().hex
        run_django(served.env, f"from hub.tasks import ping_task\nping_task.delay({token!r})\n")
        probe = f"from hub.tasks import ping_result\nprint(ping_result({token!r}) is not None)\n"
        wait_until(lambda: run_django(served.env, probe).stdout.strip().endswith("True"), timeout=45, interval=0.5,
                   message=f"the restarted worker to run a ping:\n{served.log()}")
        assert serve_child(served, b"celery") != worker  # one worker, nothing left of the killed one's processes
    finally:
        assert stop(served) == []


def half_sent_request(served: Served) -> socket.socket:
    """A client that sent part of its request headers and waits: a connection gunicorn is serving."""
    client = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return client


def test_term_to_the_process_group_stops_everything_within_10_seconds(data_dir):
    """What systemd and container runtimes do: TERM to every process at once, serve's children and
    theirs (gunicorn workers, the workers' pool processes and beat) included."""
    served = serve(data_dir.parent, prepare=False, HUB_BUILDS_ENABLED="1", HUB_BUILD_WORKER_CONCURRENCY="1")
    client = half_sent_request(served)
    try:
        # serve, the gunicorn master and its worker, the celery worker, its pool process and beat, the
        # build worker and its pool process
        wait_until(lambda: len(process_group_members(served.process.pid)) >= 8
                   and any(b"builds.worker" in command_of(pid) for pid in process_group_members(served.process.pid)),
                   timeout=30, message="every process to start")
        started = time.monotonic()
        os.killpg(served.process.pid, signal.SIGTERM)
        wait_until(lambda: not process_group_members(served.process.pid), timeout=STOP_DEADLINE, interval=0.1,
                   message=f"every process of the group to exit:\n{served.log()}")
        assert served.process.wait(timeout=1) == 0
        assert time.monotonic() - started < STOP_DEADLINE
        assert "restart" not in served.log_path.read_text(), "no child is restarted while stopping"
    finally:
        client.close()
        kill_group(served.process.pid)


# Last in the module on purpose: it stops the module's server.
def test_sigterm_stops_gunicorn_and_the_worker(served):
    members = process_group_members(served.process.pid)
    assert len(members) >= 4, "serve, the gunicorn master and workers, the celery worker"
    started = time.monotonic()
    left = stop(served, timeout=STOP_DEADLINE)
    assert left == [], f"still running after SIGTERM: {left}\n{served.log()}"
    assert served.process.returncode == 0
    assert time.monotonic() - started < STOP_DEADLINE


def test_gunicorn_check_config_loads_the_site(tmp_path):
    """`gunicorn --check-config` (what deploy tooling runs) loads the site without starting it."""
    env = {**hub_env(tmp_path / "data"), "PORT": "18123"}
    result = subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "--check-config", "--config",
                             str(REPO_ROOT / "gunicorn.conf.py")], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
