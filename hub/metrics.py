"""Figures read when Prometheus scrapes (the counters are lib/metrics.py): Celery queue lengths and uploads
in progress. Both are cluster-wide (every node reads the same broker and database and reports the same
value): aggregate them with max(), not sum()."""

from __future__ import annotations

import functools
import os

from django.conf import settings
from django.db import connection
from prometheus_client.core import GaugeMetricFamily

QUEUES = ("celery", "builds")
REDIS_PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport keeps priorities 3, 6, 9 in lists of their own
REDIS_PRIORITIES = (3, 6, 9)


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


def queue_lengths() -> dict[str, int]:
    """Messages waiting in each queue: the Redis lists' lengths, or the filesystem broker's message files."""
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
        pipe = _redis().pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
            for priority in REDIS_PRIORITIES:
                pipe.llen(f"{queue}{REDIS_PRIORITY_SEPARATOR}{priority}")
        sizes = pipe.execute()
        per_queue = 1 + len(REDIS_PRIORITIES)
        return {queue: sum(sizes[i * per_queue:(i + 1) * per_queue]) for i, queue in enumerate(QUEUES)}
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    counts = dict.fromkeys(QUEUES, 0)
    if folder:
        with os.scandir(folder) as entries:
            for entry in entries:  # <time>_<uuid>.<queue>.msg; dot-names are messages being written
                if not entry.name.startswith(".") and entry.name.endswith(".msg"):
                    queue = entry.name.partition(".")[2].removesuffix(".msg")
                    if queue in counts:
                        counts[queue] += 1
    return counts


class QueueCollector:
    def collect(self):
        family = GaugeMetricFamily("wharf_celery_queue_length", "Messages waiting in a Celery queue "
                                   "(cluster-wide: the broker's figure).", labels=["queue"])
        for queue, length in queue_lengths().items():
            family.add_metric([queue], length)
        yield family


class UploadsCollector:
    """Uploads started and neither finished nor cancelled (abandoned ones until the stale-upload sweep
    takes them, after HUB_STALE_UPLOAD_HOURS), from the database: any node may serve an upload's next request."""

    def collect(self):
        from registry.models import BlobUpload

        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {BlobUpload._meta.db_table}")  # noqa: S608 - a model's table
            (count,) = cursor.fetchone()
        yield GaugeMetricFamily("wharf_registry_uploads_in_progress", "Blob uploads started and not finished "
                                "(cluster-wide: the database's figure).", value=count)


WEB_COLLECTORS = (UploadsCollector(), QueueCollector())
WORKER_COLLECTORS = (QueueCollector(),)
