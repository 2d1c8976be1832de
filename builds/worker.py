"""The build worker: a Celery app of its own that runs builds and knows none of the site's secrets.

It imports no Django and reads no settings module, database, secret key or signing key. Each task
carries a build id and a one-build token; with that token the worker asks the hub over HTTP
(`HUB_INTERNAL_REGISTRY`) for the job (source, rule, secrets, and a short-lived registry token that
pushes to that one repository only), streams the log and state back, asks the hub to sign the pushed
digest, and reports the outcome. So it can run as its own Unix user or on another machine:

    celery -A builds.worker worker -Q builds --concurrency 2

Configuration (environment):
    HUB_INTERNAL_REGISTRY   host:port of the hub (plain HTTP), default 127.0.0.1:$PORT (8000)
    HUB_BUILD_BROKER_URL    the broker; default REDIS_URL, else the filesystem broker in
    HUB_BUILD_BROKER_DIR    (default $HUB_DATA_DIR/celery, the embedded setup's folders)
    HUB_BUILD_WORK_DIR      where workspaces go (default: the system temp dir)
    HUB_BUILD_SSH_KNOWN_HOSTS  host keys ssh sources must match (default /etc/ssh/ssh_known_hosts;
                            hosts not in it are trusted on first use, per build, and logged)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path

from celery import Celery, signals
from kombu import Queue

from builds import constants
from builds.executor import BuildOutcome
from builds.leftovers import clean_work_root
from builds.runner import LocalRunner, confinement_problem
from builds.sandbox import BuildSandbox, describe
from builds.worker_client import HubClient, HubGone, HubReporter
from lib import fsbroker

BASE_DIR = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


def _broker() -> tuple[str, dict]:
    url = os.environ.get("HUB_BUILD_BROKER_URL") or os.environ.get("REDIS_URL") or ""
    if url:
        # A build holds its message for up to its timeout: Redis must not hand it out again meanwhile.
        return url, {"visibility_timeout": 6 * 3600}
    folder = Path(os.environ.get("HUB_BUILD_BROKER_DIR")
                  or Path(os.environ.get("HUB_DATA_DIR") or BASE_DIR / "data") / "celery")
    for name in ("queue", "processing", "malformed", "processed", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return fsbroker.URL, {  # the site's embedded broker (lib/fsbroker.py), reached through its folders
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processing_folder": str(folder / "processing"), "malformed_folder": str(folder / "malformed"),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        "polling_interval": 0.5, "store_processed": False,
    }


def hub_address() -> str:
    return os.environ.get("HUB_INTERNAL_REGISTRY") or f"127.0.0.1:{os.environ.get('PORT') or 8000}"


broker_url, transport_options = _broker()
app = Celery("wharf-builds", broker=broker_url)
app.conf.update(
    broker_transport_options=transport_options, task_queues=(Queue(constants.WORKER_QUEUE),),
    task_default_queue=constants.WORKER_QUEUE,
    task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=True,
)


@signals.worker_ready.connect
def announce_sandbox(**_kwargs) -> None:
    """Say at start whether this worker can sandbox builds (it refuses every build otherwise)."""
    try:
        problem = confinement_problem()
    except ValueError as error:
        problem = str(error)
    if problem:
        logger.error("this build worker cannot sandbox builds and will refuse them: %s", problem)
    else:
        logger.info("builds run in a %s", describe())
        cleaned = BuildSandbox.clean_stale_slots()
        if cleaned:
            logger.warning("cleaned what builds of a stopped worker left in %d build slots", cleaned)
        work_root = Path(os.environ.get("HUB_BUILD_WORK_DIR") or tempfile.gettempdir())
        removed = clean_work_root(work_root)  # after a reboot, when no slot record is left to name them
        if removed:
            logger.warning("removed what earlier builds left in %s: %s", work_root, ", ".join(removed))


def run_build(build_id: int, token: str, *, hub: str | None = None, runner: LocalRunner | None = None) -> str:
    """Claim the build, run it, report the outcome; returns the final state (or why nothing ran)."""
    hub = hub or hub_address()
    client = HubClient(f"http://{hub}", build_id, token)
    try:
        job = client.claim()
    except HubGone as gone:
        logger.info("build %s not started: %s", build_id, gone)
        return "not started"
    if job is None:
        return "still queued"
    job = dataclasses.replace(job, registry=hub)  # push where this worker reaches the hub
    reporter = HubReporter(client)
    try:
        runner = runner or LocalRunner(work_root=os.environ.get("HUB_BUILD_WORK_DIR") or None,
                                       ssh_known_hosts=os.environ.get("HUB_BUILD_SSH_KNOWN_HOSTS") or None)
        outcome = runner.execute(job, reporter, client.sign)
    except ValueError as error:  # a bad HUB_BUILD_* limit in the worker's environment
        reporter.log(f"the build worker is misconfigured: {error}")
        outcome = BuildOutcome(constants.FAILED, error=f"the build worker is misconfigured: {error}")
    except Exception as error:  # the hub must hear how the build ended
        logger.exception("build %s crashed in the worker", build_id)
        outcome = BuildOutcome(constants.FAILED, error=f"the build worker crashed: {type(error).__name__}")
    reporter.flush()
    client.finish(outcome)
    return outcome.state


@app.task(name=constants.WORKER_RUN_TASK, acks_late=True)
def run_build_task(build_id: int, token: str) -> str:
    return run_build(build_id, token)
