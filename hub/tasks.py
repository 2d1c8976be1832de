"""Site-wide tasks. `ping_task` proves that a worker consumes a queue (tests and operations).

    .venv/bin/python manage.py shell -c "from hub.tasks import ping_task; ping_task.delay('check1')"
    .venv/bin/python manage.py shell -c "from hub.tasks import ping_result; print(ping_result('check1'))"

The answer lands in the cache (Redis, or the database cache by default), which every node shares.
"""

from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import cache

PING_TTL_SECONDS = 3600


def ping_cache_key(token: str) -> str:
    return f"hub:ping:{token}"


def ping_result(token: str) -> dict | None:
    """What the worker that ran `ping_task(token)` recorded, or None while it has not run."""
    return cache.get(ping_cache_key(token))


@shared_task(name="hub.tasks.ping_task")
def ping_task(token: str) -> None:
    """Record which worker ran this, and when, under `token`."""
    request = ping_task.request
    delivery = request.delivery_info or {}
    cache.set(
        ping_cache_key(token),
        {"hostname": request.hostname, "queue": delivery.get("routing_key"), "at": time.time()},
        PING_TTL_SECONDS,
    )
