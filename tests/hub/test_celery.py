"""Celery: the embedded filesystem broker under the data dir, Redis when REDIS_URL is set, and the
`builds` queue (consumed by the build worker, builds/worker.py, not by the hub's worker). A real worker
runs each case; tasks are sent from this process."""

from __future__ import annotations

import base64
import os
import pickle
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from hub.celery import app as hub_app
from tests.hub.support import hub_env, redis_db, run_django, settings_values
from tests.live import BIN, stop_process, wait_until

CELERY_SETTINGS = ("CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "CACHES")
WORKER_REDIS_DB = 11  # apart from database 0, where the session's live hub has its own worker


def test_embedded_broker_is_the_safe_filesystem_transport(tmp_path):
    values = settings_values(hub_env(tmp_path), *CELERY_SETTINGS)
    assert values["CELERY_BROKER_URL"] == "wharf-fs://"  # lib/fsbroker.py, not kombu's filesystem://


@pytest.mark.parametrize("option", ["data_folder_in", "data_folder_out", "processing_folder", "malformed_folder",
                                    "processed_folder", "control_folder"])
def test_embedded_broker_keeps_its_folders_under_the_data_dir(tmp_path, option):
    options = settings_values(hub_env(tmp_path), *CELERY_SETTINGS)["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert Path(options[option]).is_relative_to(tmp_path / "celery")


def test_broker_is_redis_when_redis_url_is_set(tmp_path):
    values = settings_values(hub_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/3"), *CELERY_SETTINGS)
    assert values["CELERY_BROKER_URL"] == "redis://127.0.0.1:1/3"


def test_builds_queue_is_declared():
    assert {queue.name for queue in hub_app.conf.task_queues} == {"celery", "builds"}


def test_only_the_build_run_task_goes_to_the_builds_queue(data_dir):
    run_django(hub_env(data_dir), (
        "from hub.celery import app\n"
        "from builds import constants\n"
        "app.send_task('builds.tasks.dispatch_queued_builds_task')\n"
        "app.send_task(constants.WORKER_RUN_TASK, args=[1, 't'], queue=constants.WORKER_QUEUE)\n"
    ))
    queued = sorted(path.name.rpartition("_")[2].split(".", 1)[1] for path in (data_dir / "celery/queue").iterdir())
    assert queued == ["builds.msg", "celery.msg"]


class Worker:
    """A real `celery -A hub worker` on its own data dir, and a Celery client speaking to its broker."""

    def __init__(self, env: dict[str, str], workdir: Path, log_path: Path):
        self.env = env
        self.workdir = workdir
        self.name = f"wharf-test-{uuid.uuid4().hex[:8]}@localhost"
        self.settings = settings_values(env, *CELERY_SETTINGS)
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "hub", "worker", "-Q", "celery", "-n", self.name,
             "--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.client = Celery("wharf-test-client", set_as_current=False)
        self.client.conf.update(
            broker_url=self.settings["CELERY_BROKER_URL"],
            broker_transport_options=self.settings["CELERY_BROKER_TRANSPORT_OPTIONS"],
            task_queues=hub_app.conf.task_queues,
        )

    def ping_result(self, token: str) -> dict | None:
        """Read what `hub.tasks.ping_task` stored in the worker's cache (Redis or the database cache)."""
        key = f":1:hub:ping:{token}"
        cache = self.settings["CACHES"]["default"]
        if cache["BACKEND"].endswith("RedisCache"):
            raw = redis.Redis.from_url(cache["LOCATION"]).get(key)
            return pickle.loads(raw) if raw else None
        database = Path(self.env["HUB_DATA_DIR"]) / "hub.sqlite3"
        with sqlite3.connect(database, timeout=10) as db:
            row = db.execute(f"SELECT value FROM {cache['LOCATION']} WHERE cache_key = ?", (key,)).fetchone()
        return pickle.loads(base64.b64decode(row[0])) if row else None

    def wait_for_ping(self, token: str) -> dict:
        def ran() -> dict | None:
            assert self.process.poll() is None, f"the worker exited:\n{self.log_path.read_text()}"
            return self.ping_result(token)

        return wait_until(ran, timeout=45, interval=0.2, message=f"the worker to run ping {token}")

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture(scope="module", params=["filesystem", "redis"])
def worker(request, migrated_template, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"worker-{request.param}")
    data_dir = root / "data"
    shutil.copytree(migrated_template, data_dir)
    extra = {}
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("REDIS_URL is not set (tests/services.sh provides it)")
        extra["REDIS_URL"] = redis_db(os.environ["REDIS_URL"], WORKER_REDIS_DB)
    workdir = root / "cwd"  # not the repository: the worker must write nothing where it is started
    workdir.mkdir()
    worker = Worker(hub_env(data_dir, **extra), workdir, root / "worker.log")
    yield worker
    worker.stop()


def test_worker_runs_a_task_sent_to_the_default_queue(worker):
    token = uuid.uuid4().hex
    worker.client.send_task("hub.tasks.ping_task", args=[token])
    result = worker.wait_for_ping(token)
    assert result["hostname"] == worker.name
    assert result["queue"] == "celery"


def test_worker_writes_nothing_in_its_working_directory(worker):
    token = uuid.uuid4().hex
    worker.client.send_task("hub.tasks.ping_task", args=[token])
    worker.wait_for_ping(token)
    assert sorted(path.name for path in worker.workdir.iterdir()) == []


def test_worker_sets_malformed_messages_aside_and_runs_the_next_task(worker):
    """An empty and a torn message in the embedded broker's queue: the worker neither stops nor
    redelivers them; the next task runs."""
    if worker.settings["CELERY_BROKER_URL"] != "wharf-fs://":
        pytest.skip("the embedded broker's folders")
    options = worker.settings["CELERY_BROKER_TRANSPORT_OPTIONS"]
    queue = Path(options["data_folder_in"])
    (queue / "00000000000000000_empty.celery.msg").write_bytes(b"")
    (queue / "00000000000000001_torn.celery.msg").write_bytes(b'{"body": "eyJhcmdzIjog')
    token = uuid.uuid4().hex
    worker.client.send_task("hub.tasks.ping_task", args=[token])
    worker.wait_for_ping(token)
    assert worker.process.poll() is None
    assert sorted(path.name for path in Path(options["malformed_folder"]).iterdir()) == [
        "00000000000000000_empty.celery.msg", "00000000000000001_torn.celery.msg"]
    assert "Unrecoverable error" not in worker.log_path.read_text()
