"""Sending deliveries: one attempt at a time, claimed atomically, retried by the sweep.

A delivery is a row with a `next_attempt_at`. Whoever claims it (the task enqueued on commit, or
the periodic sweep) moves `next_attempt_at` forward by a lease, so two workers never send the same
attempt, and a worker that dies mid-attempt only delays it by the lease.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from webhooks import delivery as http
from webhooks.models import Delivery, Webhook

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_FACTOR = 4  # base, 4×base, 16×base, 64×base: with a 60 s base, about 85 minutes in all
CLAIM_LEASE_SECONDS = 120  # longer than one attempt can take (timeouts plus the read cap)
STORED_BODY_BYTES = 1024
SWEEP_BATCH = 500
BATCH_THREADS = 8  # one event's deliveries in flight at once: a slow receiver holds up only its thread


def disable_after() -> int:
    """Consecutive failed deliveries after which a webhook is turned off."""
    return int(getattr(settings, "HUB_WEBHOOK_DISABLE_AFTER", 10))


@cache
def _networks(raw: tuple[str, ...]) -> list[http.Network]:
    return http.parse_networks(raw)


def allowed_networks() -> list[http.Network]:
    return _networks(tuple(settings.HUB_WEBHOOK_ALLOWED_NETWORKS))


def backoff_seconds(attempts: int) -> float:
    """The wait after failed attempt number `attempts` (1-based)."""
    return float(settings.HUB_WEBHOOK_BACKOFF_SECONDS) * BACKOFF_FACTOR ** max(0, attempts - 1)


def _claim(delivery_id, now: datetime) -> Delivery | None:
    claimed = Delivery.objects.filter(pk=delivery_id, state=Delivery.State.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_SECONDS), attempts=F("attempts") + 1,
        last_attempt_at=now,
    )
    if not claimed:
        return None
    return Delivery.objects.select_related("webhook").get(pk=delivery_id)


def _claim_many(delivery_ids: list, now: datetime) -> list[Delivery]:
    """`_claim` for several deliveries in one transaction (rows locked, skipping those someone has)."""
    with transaction.atomic():
        due = list(Delivery.objects.select_for_update(skip_locked=True)
                   .filter(pk__in=delivery_ids, state=Delivery.State.PENDING, next_attempt_at__lte=now)
                   .values_list("pk", flat=True))
        if not due:
            return []
        Delivery.objects.filter(pk__in=due).update(
            next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_SECONDS), attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    return list(Delivery.objects.select_related("webhook").filter(pk__in=due))


def _cancel(delivery: Delivery, reason: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        state=Delivery.State.CANCELLED, error=reason, next_attempt_at=None, completed_at=timezone.now(),
        attempts=F("attempts") - 1,
    )


def delivery_attempt(*, delivery_id) -> Delivery | None:
    """Make the next attempt of a due delivery; None when it is not due or someone else has it."""
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    return _attempt(delivery, now)


def _attempt(delivery: Delivery, claimed_at: datetime) -> Delivery | None:
    """Send a claimed delivery and record the outcome."""
    now = max(claimed_at, timezone.now())
    webhook = delivery.webhook
    if not delivery.manual and delivery.event != "repository_delete":
        if webhook is None:
            _cancel(delivery, "The webhook was deleted before this delivery was sent.")
            return None
        if not webhook.active:
            _cancel(delivery, "The webhook was disabled before this delivery was sent.")
            return None

    body = delivery.body.encode()
    status = None
    retry = False
    error = ""
    response = None
    try:
        response = http.post(delivery.url, body, delivery.request_headers, allowed_networks=allowed_networks())
    except http.DeliveryRefused as exc:
        error = f"Not sent: {exc}."
    except http.DeliveryFailed as exc:
        error = f"Network error: {exc}."
        retry = True
    else:
        status = response.status
        if 300 <= status < 400:
            error = f"The receiver answered {status} (redirects are not followed)."
        elif 400 <= status < 500:
            error = f"The receiver answered {status}: not retried."
        elif status >= 500:
            error = f"The receiver answered {status}."
            retry = True
        elif status < 200:
            error = f"Unexpected status {status}."
            retry = True
    return _record(delivery, response=response, status=status, error=error, retry=retry, started=now)


def delivery_attempts(*, delivery_ids: Iterable) -> None:
    """Attempt several due deliveries (one event's, to its webhooks) from one task.

    One task per event instead of one per webhook: a push to a repository with 50 webhooks costs the
    broker one message and the database one claim, not 50 of each. They are sent by a few threads, so
    a slow receiver holds up only its own; each thread closes its database connection when done. An
    unexpected error leaves that delivery claimed: the sweep retries it after the lease.
    """
    now = timezone.now()
    claimed: queue.SimpleQueue = queue.SimpleQueue()
    deliveries = _claim_many(list(delivery_ids), now)
    for delivery in deliveries:
        claimed.put(delivery)

    def work() -> None:
        try:
            while True:
                try:
                    delivery = claimed.get_nowait()
                except queue.Empty:
                    return
                try:
                    _attempt(delivery, now)
                except Exception:  # the others still go; the sweep retries this one
                    logger.exception("webhook delivery %s failed unexpectedly", delivery.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, name=f"webhook-{n}", daemon=True)
               for n in range(min(BATCH_THREADS, len(deliveries)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _excerpt(data: bytes) -> str:
    return data[:STORED_BODY_BYTES].decode("utf-8", errors="replace")


def _record(delivery: Delivery, *, response, status, error: str, retry: bool, started: datetime) -> Delivery:
    now = timezone.now()
    succeeded = status is not None and 200 <= status < 300
    duration = response.duration_ms if response is not None else int((now - started).total_seconds() * 1000)
    fields = {
        "response_status": status,
        "response_headers": dict(list(response.headers.items())[:50]) if response is not None else {},
        "response_body": _excerpt(response.body) if response is not None else "",
        "duration_ms": duration,
        "error": error,
        "attempt_log": [*delivery.attempt_log, {
            "attempt": delivery.attempts, "at": started.isoformat(), "status": status, "error": error,
            "duration_ms": duration,
        }],
    }
    if succeeded:
        fields.update(state=Delivery.State.SUCCEEDED, next_attempt_at=None, completed_at=now)
    elif retry and delivery.attempts < MAX_ATTEMPTS:
        fields.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(delivery.attempts)))
    else:
        fields.update(state=Delivery.State.FAILED, next_attempt_at=None, completed_at=now)
        if retry:
            fields["error"] = f"{error} Gave up after {delivery.attempts} attempts."
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        if delivery.webhook_id is not None and fields.get("state") in (Delivery.State.SUCCEEDED,
                                                                       Delivery.State.FAILED):
            _count_outcome(delivery.webhook_id, succeeded=succeeded, error=fields["error"])
    for name, value in fields.items():
        setattr(delivery, name, value)
    logger.info("webhook delivery %s (%s) attempt %s: %s", delivery.pk, delivery.event, delivery.attempts,
                status if status is not None else error)
    return delivery


def _count_outcome(webhook_id: int, *, succeeded: bool, error: str) -> None:
    if succeeded:
        Webhook.objects.filter(pk=webhook_id).exclude(consecutive_failures=0).update(consecutive_failures=0)
        return
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
    if webhook is None:
        return
    webhook.consecutive_failures += 1
    update = ["consecutive_failures"]
    limit = disable_after()
    if webhook.active and limit > 0 and webhook.consecutive_failures >= limit:
        webhook.active = False
        webhook.disabled_at = timezone.now()
        webhook.disabled_reason = (
            f"Disabled automatically after {webhook.consecutive_failures} consecutive failed deliveries. "
            f"Last error: {error}"
        )
        update += ["active", "disabled_at", "disabled_reason"]
        logger.warning("webhook %s disabled: %s", webhook.pk, webhook.disabled_reason)
    webhook.save(update_fields=[*update, "updated_at"])


def deliveries_due(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list:
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )


def delivery_sweep(*, enqueue: Callable[[str], object] | None = None, now: datetime | None = None) -> int:
    """Every due delivery: handed to `enqueue` (the periodic task), or attempted here (tests, commands)."""
    due = deliveries_due(now=now)
    for delivery_id in due:
        if enqueue is not None:
            enqueue(str(delivery_id))
        else:
            delivery_attempt(delivery_id=delivery_id)
    return len(due)
