"""Celery tasks: interfaces only. They take ids and call services (routed to the `builds` queue)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from builds import services

# The runner enforces HUB_BUILD_TIMEOUT_SECONDS itself; these limits catch a runner that hangs.
SOFT_MARGIN_SECONDS = 120
HARD_MARGIN_SECONDS = 300


@shared_task(name="builds.tasks.run_build_task", acks_late=True,
             soft_time_limit=settings.HUB_BUILD_TIMEOUT_SECONDS + SOFT_MARGIN_SECONDS,
             time_limit=settings.HUB_BUILD_TIMEOUT_SECONDS + HARD_MARGIN_SECONDS)
def run_build_task(build_id: int) -> str:
    build = services.build_execute(build_id=build_id)
    return build.state if build is not None else "not started"


@shared_task(name="builds.tasks.dispatch_queued_builds_task", ignore_result=True)
def dispatch_queued_builds_task() -> int:
    return services.dispatch_queued_builds()


@shared_task(name="builds.tasks.sweep_stale_builds_task", ignore_result=True)
def sweep_stale_builds_task() -> int:
    return services.builds_sweep_stale()
