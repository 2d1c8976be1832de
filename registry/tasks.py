"""Periodic registry work. Tasks are interfaces: they call services."""

from celery import shared_task

from registry.pulls import flush_pull_counters
from registry.retention import run_all
from registry.services.gc import cleanup_stale_uploads, collect_garbage, repository_cleanup_pending
from registry.services.quotas import send_quota_warning


@shared_task(name="registry.flush_pull_counters")
def flush_pull_counters_task() -> int:
    return flush_pull_counters()


@shared_task(name="registry.cleanup_stale_uploads")
def cleanup_stale_uploads_task() -> int:
    """Abandoned pushes: their stale uploads, then the repositories they created and never finished."""
    removed = cleanup_stale_uploads()
    repository_cleanup_pending()
    return removed


@shared_task(name="registry.collect_garbage")
def collect_garbage_task() -> int:
    return collect_garbage().blobs_deleted


@shared_task(name="registry.run_retention_policies")
def run_retention_policies_task() -> int:
    return run_all()


@shared_task(name="registry.evict_mirrors")
def evict_mirrors_task() -> int:
    """HUB_MIRROR_MAX_BYTES: the least recently pulled mirrored repositories go while the cache is over it."""
    from registry.mirror.eviction import evict_mirrors

    return len(evict_mirrors())


@shared_task(name="registry.send_quota_warning")
def send_quota_warning_task(namespace_id: int) -> int:
    """The owners' one email when their namespace passes 80% of its storage quota."""
    return send_quota_warning(namespace_id=namespace_id)
