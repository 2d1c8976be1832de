"""Periodic account work. Tasks are interfaces: they call services."""

from celery import shared_task

from accounts.audit import prune


@shared_task(name="accounts.prune_audit_events")
def prune_audit_events_task() -> int:
    return prune()
