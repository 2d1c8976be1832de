"""Webhook tasks: interfaces that call webhooks.sending (retries are rows, swept; never sleeping tasks)."""

from celery import shared_task

from webhooks import sending


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver_webhook_task(delivery_id: str) -> None:
    sending.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.deliver_many", ignore_result=True)
def deliver_webhooks_task(delivery_ids: list[str]) -> None:
    """One event's deliveries (one per webhook), sent a few at a time by one task."""
    sending.delivery_attempts(delivery_ids=delivery_ids)


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries_task() -> int:
    return sending.delivery_sweep(enqueue=deliver_webhook_task.delay)
