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

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("celery"), Queue("builds"))
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


@signals.celeryd_init.connect
def _metrics_folder(**kwargs) -> None:
    """A worker serving metrics counts in files its pool processes share: the folder must be set before
    prometheus_client is first imported (this runs before the tasks and Django's apps are loaded)."""
    from django.conf import settings

    if not settings.HUB_WORKER_METRICS_PORT:
        return
    if "prometheus_client" in sys.modules:
        logger.warning("metrics: prometheus_client was imported before the worker started: the pool "
                       "processes' counts will not be summed")
        return
    folder = settings.DATA_DIR / "metrics" / f"worker-{settings.HUB_WORKER_METRICS_PORT}"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    from lib.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(folder)


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
