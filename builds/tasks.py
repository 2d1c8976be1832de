"""The hub's build tasks (default queue): dispatching queued builds and sweeping stale ones.

Builds themselves run on the `builds` queue in the build worker (`builds/worker.py`), which has no
database and no site secrets.
"""

from __future__ import annotations

from celery import shared_task

from builds import lifecycle, services


@shared_task(name="builds.tasks.dispatch_queued_builds_task", ignore_result=True)
def dispatch_queued_builds_task() -> int:
    return services.dispatch_queued_builds()


@shared_task(name="builds.tasks.sweep_stale_builds_task", ignore_result=True)
def sweep_stale_builds_task() -> int:
    return lifecycle.builds_sweep_stale()
