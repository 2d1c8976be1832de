"""The Celery app. Reads the CELERY_* settings; tasks are discovered in every app."""

import os

from celery import Celery
from kombu import Queue

import lib.fsbroker  # noqa: F401 - registers the embedded broker's URL scheme, wharf-fs://

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("celery"), Queue("builds"))
app.autodiscover_tasks()
