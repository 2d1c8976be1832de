"""The Celery app. Reads the CELERY_* settings; tasks are discovered in every app.

Metrics (README, "Metrics"): every process counts its tasks' outcomes (lib/metrics.py); with
HUB_WORKER_METRICS_PORT set, a worker serves them, its pool processes' summed, on that port.
"""

import logging
import os
import sys

from celery import Celery, signals
from kombu import Queue

import lib.fsbroker  # noqa: F401 - registers the embedded broker's URL scheme, wharf-fs://

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
logger = logging.getLogger(__name__)


# Connected before the app exists, so before Django's fixup (which sets Django up on this same signal, and
# the apps' modules import prometheus_client): the folder must be set before that first import.
@signals.import_modules.connect
def _metrics_folder(**kwargs) -> None:
    """A worker serving metrics (`celery … worker` with HUB_WORKER_METRICS_PORT) counts in files its pool
    processes share, in a folder emptied at its start."""
    if "worker" not in sys.argv[1:]:
        return  # beat, shell, inspect: not the worker's main process
    from django.conf import settings

    if not settings.HUB_WORKER_METRICS_PORT:
        return
    if "prometheus_client" in sys.modules:
        logger.warning("metrics: prometheus_client was imported before the worker started: the pool "
                       "processes' counts will not be summed")
        return
    folder = settings.DATA_DIR / "metrics" / f"worker-{settings.HUB_WORKER_METRICS_PORT}"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # a previous run's counts would be summed in
        stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("celery"), Queue("builds"))
app.autodiscover_tasks()


@signals.worker_ready.connect
def _serve_metrics(**kwargs) -> None:
    from django.conf import settings

    if not settings.HUB_WORKER_METRICS_PORT:
        return
    from hub.metrics import WORKER_COLLECTORS
    from lib import metrics

    if not settings.HUB_METRICS_TOKEN:
        logger.warning("metrics: HUB_WORKER_METRICS_PORT is set but HUB_METRICS_TOKEN is not: /metrics answers 404")
    app_ = metrics.metrics_app(lambda: settings.HUB_METRICS_TOKEN, WORKER_COLLECTORS, root_pid=os.getpid)
    server = metrics.serve_metrics(settings.HUB_WORKER_METRICS_BIND, settings.HUB_WORKER_METRICS_PORT, app_)
    logger.info("metrics: serving on %s:%s/metrics", *server.server_address[:2])


@signals.task_success.connect
def _task_succeeded(sender=None, **kwargs) -> None:
    from lib.metrics import CELERY_TASKS

    CELERY_TASKS.labels(sender.name, "success").inc()


@signals.task_failure.connect
def _task_failed(sender=None, **kwargs) -> None:
    from lib.metrics import CELERY_TASKS

    CELERY_TASKS.labels(sender.name, "failure").inc()


@signals.task_retry.connect
def _task_retried(sender=None, **kwargs) -> None:
    from lib.metrics import CELERY_TASKS

    CELERY_TASKS.labels(sender.name, "retry").inc()
