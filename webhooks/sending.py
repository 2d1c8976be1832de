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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from lib import outbound as http
from lib.metrics import WEBHOOK_DELIVERIES
from lib.sql import column, table
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
    return _claimed([delivery_id]).get()


def _claim_many(delivery_ids: list, now: datetime, *, rounds: int = 1) -> list[Delivery]:
    """`_claim` for several deliveries in one transaction (rows locked, skipping those someone has).

    They are sent `rounds` at a time after one another, so the lease covers that many attempts.
    """
    with transaction.atomic():
        due = list(Delivery.objects.select_for_update(skip_locked=True)
                   .filter(pk__in=delivery_ids, state=Delivery.State.PENDING, next_attempt_at__lte=now)
                   .values_list("pk", flat=True))
        if not due:
            return []
        Delivery.objects.filter(pk__in=due).update(
            next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_SECONDS * rounds), attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    return list(_claimed(due))


def _claimed(delivery_ids: list):
    """The claimed deliveries with their webhooks, to send. The webhook's secret and headers are not
    needed (the delivery has its signed headers), so they are not loaded and not decrypted."""
    return (Delivery.objects.select_related("webhook").defer("webhook__secret", "webhook__headers")
            .filter(pk__in=delivery_ids))


def delivery_attempt(*, delivery_id) -> Delivery | None:
    """Make the next attempt of a due delivery; None when it is not due or someone else has it."""
    now = timezone.now()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    return _attempt(delivery, now)


def _attempt(delivery: Delivery, claimed_at: datetime) -> Delivery | None:
    """Send a claimed delivery and record the outcome; None when it was cancelled instead."""
    outcome = _send(delivery, claimed_at)
    _save_outcomes([outcome])
    return None if outcome.cancelled else delivery


@dataclass
class _Outcome:
    """What one attempt came to: the fields to write, or why it was cancelled (nothing sent)."""

    delivery: Delivery
    fields: dict = field(default_factory=dict)
    cancelled: str = ""
    status: int | None = None
    finished: bool = False  # succeeded or failed for good: counts for the webhook's failure streak


def _send(delivery: Delivery, claimed_at: datetime, connections: http.Connections | None = None) -> _Outcome:
    """Send a claimed delivery (no database here: the caller saves the outcome)."""
    webhook = delivery.webhook
    if not delivery.manual and delivery.event != "repository_delete":
        if webhook is None:
            return _Outcome(delivery, cancelled="The webhook was deleted before this delivery was sent.")
        if not webhook.active:
            return _Outcome(delivery, cancelled="The webhook was disabled before this delivery was sent.")

    started = max(claimed_at, timezone.now())
    body = delivery.body.encode()
    status = None
    retry = False
    error = ""
    response = None
    try:
        response = http.post(delivery.url, body, delivery.request_headers, allowed_networks=allowed_networks(),
                             connections=connections)
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
    return _outcome(delivery, response=response, status=status, error=error, retry=retry, started=started)


def delivery_attempts(*, delivery_ids: Iterable) -> None:
    """Attempt several due deliveries (one event's, to its webhooks) from one task.

    One task per event instead of one per webhook: a push to a repository with 50 webhooks costs the
    broker one message and the database one claim, not 50 of each. Up to BATCH_THREADS threads send
    them, so a slow receiver holds up only its own thread, over connections kept alive for the batch
    (http.Connections); the outcomes are saved by this thread as they come in, several in one
    transaction, so the senders never wait for the database. An unexpected error leaves that
    delivery claimed: the sweep retries it after the lease.
    """
    now = timezone.now()
    delivery_ids = list(delivery_ids)
    deliveries = _claim_many(delivery_ids, now, rounds=-(-len(delivery_ids) // BATCH_THREADS))
    if not deliveries:
        return
    claimed: queue.SimpleQueue = queue.SimpleQueue()
    outcomes: queue.SimpleQueue = queue.SimpleQueue()
    for delivery in deliveries:
        claimed.put(delivery)
    thread_count = min(BATCH_THREADS, len(deliveries))

    with http.Connections(size=thread_count) as connections:
        def work() -> None:
            while True:
                try:
                    delivery = claimed.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcomes.put(_send(delivery, now, connections))
                except Exception:  # the others still go; the sweep retries this one
                    logger.exception("webhook delivery %s failed unexpectedly", delivery.pk)
                    outcomes.put(None)

        threads = [threading.Thread(target=work, name=f"webhook-{n}", daemon=True) for n in range(thread_count)]
        for thread in threads:
            thread.start()
        try:
            remaining = len(deliveries)
            while remaining:
                ready = [outcomes.get()]
                while True:
                    try:
                        ready.append(outcomes.get_nowait())
                    except queue.Empty:
                        break
                remaining -= len(ready)
                _save_outcomes_safely([outcome for outcome in ready if outcome is not None])
        finally:
            for thread in threads:
                thread.join()


def _excerpt(data: bytes) -> str:
    return data[:STORED_BODY_BYTES].decode("utf-8", errors="replace")


def _outcome(delivery: Delivery, *, response, status, error: str, retry: bool, started: datetime) -> _Outcome:
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
    return _Outcome(delivery, fields=fields, status=status, finished="state" in fields)


def _save_outcomes_safely(outcomes: list[_Outcome]) -> None:
    """`_save_outcomes`, falling back to one at a time so one bad row does not lose the others."""
    if not outcomes:
        return
    try:
        _save_outcomes(outcomes)
    except Exception:
        if len(outcomes) == 1:
            logger.exception("webhook delivery %s: the outcome could not be saved", outcomes[0].delivery.pk)
            return
        for outcome in outcomes:
            _save_outcomes_safely([outcome])


def _save_outcomes(outcomes: list[_Outcome]) -> None:
    """Write attempts' outcomes in one transaction, and count them against their webhooks."""
    reset: set[int] = set()  # webhooks whose streak of failures ends here (one UPDATE for them all)
    with transaction.atomic():
        _update_deliveries([(outcome.delivery.pk, outcome.fields) for outcome in outcomes if not outcome.cancelled])
        for outcome in outcomes:
            delivery = outcome.delivery
            if outcome.cancelled:
                Delivery.objects.filter(pk=delivery.pk).update(
                    state=Delivery.State.CANCELLED, error=outcome.cancelled, next_attempt_at=None,
                    completed_at=timezone.now(), attempts=F("attempts") - 1,
                )
                continue
            if delivery.webhook_id is None or not outcome.finished:
                continue
            if outcome.fields["state"] == Delivery.State.SUCCEEDED:
                reset.add(delivery.webhook_id)
            else:
                if delivery.webhook_id in reset:  # keep the order: that success came before this failure
                    reset.discard(delivery.webhook_id)
                    _reset_failures([delivery.webhook_id])
                _count_failure(delivery.webhook_id, error=outcome.fields["error"])
        _reset_failures(reset)
    for outcome in outcomes:
        if outcome.cancelled:
            WEBHOOK_DELIVERIES.labels("cancelled").inc()
            continue
        WEBHOOK_DELIVERIES.labels(_metric_outcome(outcome)).inc()
        delivery = outcome.delivery
        for name, value in outcome.fields.items():
            setattr(delivery, name, value)
        logger.info("webhook delivery %s (%s) attempt %s: %s", delivery.pk, delivery.event, delivery.attempts,
                    outcome.status if outcome.status is not None else delivery.error)


def _metric_outcome(outcome: _Outcome) -> str:
    """success, failure (given up) or retry (tried again later): wharf_webhook_deliveries_total's label."""
    if not outcome.finished:
        return "retry"
    return "success" if outcome.fields["state"] == Delivery.State.SUCCEEDED else "failure"


def _update_deliveries(rows: list[tuple]) -> None:
    """`Delivery.objects.filter(pk=pk).update(**fields)` for each (pk, fields), one statement per set of fields.

    Values go through each field's own preparation (JSON, dates, the UUID key) as `update()` would, and
    run as one `executemany`: about a quarter of the CPU of an ORM `update()` per row, and far less
    than `bulk_update` (its CASE WHEN per field costs more than the updates it replaces).
    """
    meta = Delivery._meta
    statements: dict[tuple[str, ...], list] = {}
    for pk, fields in rows:
        statements.setdefault(tuple(fields), []).append((pk, fields))
    with connection.cursor() as cursor:
        for names, group in statements.items():
            columns = [meta.get_field(name) for name in names]
            sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608 - names from the model (lib.sql), values as parameters
                table(Delivery), ", ".join(f"{column(Delivery, name)} = %s" for name in names),
                column(Delivery, meta.pk.name),
            )
            cursor.executemany(sql, [
                [field.get_db_prep_save(fields[field.name], connection) for field in columns]
                + [meta.pk.get_db_prep_value(pk, connection)]
                for pk, fields in group
            ])


def _reset_failures(webhook_ids: Iterable[int]) -> None:
    webhook_ids = list(webhook_ids)
    if webhook_ids:
        Webhook.objects.filter(pk__in=webhook_ids).exclude(consecutive_failures=0).update(consecutive_failures=0)


def _count_failure(webhook_id: int, *, error: str) -> None:
    # The secret and headers are not needed here: not loaded, not decrypted.
    webhook = Webhook.objects.select_for_update().defer("secret", "headers").filter(pk=webhook_id).first()
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
