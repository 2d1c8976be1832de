"""A real gunicorn (and a real Celery worker) on loopback, sharing the test database."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings

from lib import crypto

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the test database pytest-django created (call after django_db_setup)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def hub_environment(port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        # The test settings (fast password hasher, so committed test users can log in), in live mode.
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "HUB_TEST_LIVE": "1",
        "HUB_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": test_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "PORT": str(port),
        "HUB_BIND": "127.0.0.1",
        "HUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HUB_WEB_WORKERS": "2",
        "HUB_WEB_THREADS": "8",
        "HUB_ACCESS_LOG": "",
        "HUB_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HUB_WEBHOOK_BACKOFF_SECONDS": "0.2",
        "HUB_PULL_FLUSH_SECONDS": "1",
    }
    env.pop("HUB_CELERY_EAGER", None)
    if not os.environ.get("REDIS_URL"):
        env.pop("REDIS_URL", None)
    # Secrets the test process stores encrypted must be readable by every hub it starts, whatever
    # their data dir (a private broker on the embedded setup means a data dir of its own).
    env["HUB_ENCRYPTION_KEY"] = shared_encryption_keys()
    env.update(extra)
    return env


def shared_encryption_keys() -> str:
    """The keys this test process encrypts with (HUB_ENCRYPTION_KEY's format, current first)."""
    crypto.keys()  # makes the key file on first use
    return settings.HUB_ENCRYPTION_KEY or (Path(settings.KEYS_DIR) / crypto.KEY_FILE).read_text().strip()


class GiveUp(Exception):
    """Raised by a predicate to stop `wait_until` at once."""


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}" + (f": {last_error!r}" if last_error else ""))


def log_tail(path: Path, size: int = 8000) -> str:
    """The end of a server's log file ("" before it exists)."""
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def wait_until_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    """Wait for the gunicorn `process` to answer `url`/healthz with 200; give up at once, showing the
    end of its log, if it exits."""
    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"gunicorn exited:\n{log_tail(log_path)}")
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200

    wait_until(answers, timeout=timeout, message="gunicorn to answer /healthz")


class Loopback:
    """`url` and `host` of a server listening on 127.0.0.1:`port`."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


_static_collected: set[str] = set()


def collect_static(env: dict[str, str]) -> None:
    """collectstatic once per data dir, as `make run` does before starting gunicorn."""
    if env["HUB_DATA_DIR"] in _static_collected:
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=REPO_ROOT, env=env, check=True,
    )
    _static_collected.add(env["HUB_DATA_DIR"])


@dataclass
class LiveHub(Loopback):
    port: int
    process: subprocess.Popen
    log_path: Path
    worker: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)
    build_worker: subprocess.Popen | None = None

    def log(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        for proc in (self.build_worker, self.worker, self.process):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self.build_worker, self.worker, self.process):
            if proc is not None:
                stop_process(proc)


_private_brokers = itertools.count(2)


def private_broker(log_dir: Path) -> dict[str, str]:
    """Settings giving a hub its own broker (and cache), so its worker never takes another hub's tasks:
    a Redis database of its own, or, with the filesystem broker, a data dir of its own."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        number = next(_private_brokers)
        if number in (11, 13):  # used by tests/hub and tests/webhooks for their own private hubs
            number = next(_private_brokers)
        return {"REDIS_URL": urlunsplit(urlsplit(redis_url)._replace(path=f"/{number}"))}
    return {"HUB_DATA_DIR": tempfile.mkdtemp(prefix="hub-", dir=log_dir)}


def build_worker_environment(env: dict[str, str]) -> dict[str, str]:
    """What the build worker of the hub configured by `env` gets: where the hub and the broker are, and
    nothing else of the site (no settings module, database URL, secret key or data dir), like
    `builds.services.build_worker_environment` gives it under `manage.py serve`."""
    from builds.services import WORKER_ONLY_VARIABLES  # the sandbox limits `manage.py serve` hands on

    worker_env = {name: os.environ[name] for name in ("PATH", "LANG") if name in os.environ}
    worker_env["HUB_INTERNAL_REGISTRY"] = env.get("HUB_INTERNAL_REGISTRY") or f"127.0.0.1:{env['PORT']}"
    if env.get("REDIS_URL"):
        worker_env["HUB_BUILD_BROKER_URL"] = env["REDIS_URL"]
    else:
        worker_env["HUB_BUILD_BROKER_DIR"] = str(Path(env["HUB_DATA_DIR"]) / "celery")
    for name in ("HUB_BUILD_WORK_DIR", *WORKER_ONLY_VARIABLES):
        if env.get(name):
            worker_env[name] = env[name]
    return worker_env


def start_build_worker(env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log = open(log_dir / f"build-worker-{env['PORT']}.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "builds.worker", "worker", "-Q", "builds", "--concurrency", "2",
         "-n", f"builds-{env['PORT']}@%h", "--loglevel", "INFO"],
        cwd=REPO_ROOT, env=build_worker_environment(env), stdout=log, stderr=subprocess.STDOUT,
    )


def start_hub(log_dir: Path, *, with_worker: bool = True, **extra: str) -> LiveHub:
    """Start gunicorn (and a Celery worker with beat). A hub started with settings of its own gets a
    private broker too, unless `extra` chooses REDIS_URL or HUB_DATA_DIR itself."""
    port = free_port()
    if extra and not {"REDIS_URL", "HUB_DATA_DIR"} & set(extra):
        extra = {**private_broker(log_dir), **extra}
    env = hub_environment(port, **extra)
    collect_static(env)
    log_path = log_dir / f"gunicorn-{port}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(REPO_ROOT / "gunicorn.conf.py")],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    worker = None
    if with_worker:
        worker_log = open(log_dir / f"celery-{port}.log", "ab")  # noqa: SIM115
        worker = subprocess.Popen(
            [str(BIN / "celery"), "-A", "hub", "worker", "-B", "-Q", "celery", "--concurrency", "2",
             "-n", f"hub-{port}@%h", "--loglevel", "INFO", "--schedule", str(log_dir / f"beat-{port}")],
            cwd=REPO_ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
        )
    build_worker = None
    if with_worker and env.get("HUB_BUILDS_ENABLED", "").lower() in {"1", "true", "yes", "on"}:
        build_worker = start_build_worker(env, log_dir)
    hub = LiveHub(port=port, process=process, log_path=log_path, worker=worker, extra=extra,
                  build_worker=build_worker)
    try:
        wait_until_healthy(hub.url, process, log_path)
    except Exception:
        hub.stop()
        raise
    return hub
