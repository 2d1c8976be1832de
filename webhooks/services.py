"""Webhook operations: configuration, turning events into deliveries, redelivery, callbacks.

Deliveries are rows created in the caller's transaction (the one that changed the tag) and
enqueued when it commits; the periodic sweep picks up whatever the broker lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import audit
from repositories.models import Repository
from repositories.services import repository_snapshot
from webhooks import payloads
from webhooks.models import Delivery, Webhook
from webhooks.tasks import deliver_webhook_task, deliver_webhooks_task
from webhooks.validation import (
    is_reserved_header,
    validate_events,
    validate_headers,
    validate_secret,
    validate_url,
)

logger = logging.getLogger(__name__)

# --- Custom headers: values are write-only ---------------------------------------------------------
# Like the secret: they are often the receiver's credential, and every admin of the repository (not
# only the one who set them) sees the webhook. Responses and pages show the names with HEADER_MASK as
# every value; sending the mask back keeps the stored value. Masking is for presentation only: the
# rows keep the real values (encrypted), and deliveries and redeliveries send those.

HEADER_MASK = "********"


def _mapping(headers) -> dict[str, str]:
    return headers if isinstance(headers, dict) else {}


def headers_masked(headers) -> dict[str, str]:
    """A webhook's custom headers as shown to people: the names, each value replaced by HEADER_MASK."""
    return dict.fromkeys(_mapping(headers), HEADER_MASK)


def request_headers_masked(headers) -> dict[str, str]:
    """A delivery's request headers as shown: ours in clear (the signature is an HMAC of a body the
    viewer sees anyway), the webhook's custom ones masked."""
    return {name: str(value) if is_reserved_header(name) else HEADER_MASK
            for name, value in _mapping(headers).items()}


def _unmask(*, headers, stored) -> tuple[dict[str, str], list[str]]:
    """Validated `headers` with each HEADER_MASK replaced by the stored value of that header (names
    match case-insensitively; the spelling given wins), and the names of the non-empty values kept."""
    clean = validate_headers(headers)
    stored_values = {name.lower(): value for name, value in _mapping(stored).items()}
    kept = []
    for name, value in clean.items():
        if value != HEADER_MASK:
            continue
        if name.lower() not in stored_values:
            raise ValidationError({"headers": ValidationError(
                f"{name} has no saved value to keep: enter its value ({HEADER_MASK} stands for a saved value).",
                code="header_mask")})
        clean[name] = stored_values[name.lower()]
        if clean[name]:
            kept.append(name)
    return clean, kept


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


# --- Configuration ---------------------------------------------------------------------------------


def webhook_create(*, repository: Repository, name: str, url: str, events: Iterable[str], secret: str = "",
                   headers: dict | None = None, active: bool = True, user=None) -> Webhook:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError("Give the webhook a name of at most 100 characters.", code="name")
    with transaction.atomic():
        webhook = Webhook.objects.create(
            repository=repository, name=name, url=validate_url(url), events=validate_events(list(events)),
            secret=validate_secret(secret), headers=_unmask(headers=headers or {}, stored={})[0],
            active=active, created_by=user,
        )
        # The host only: a URL may carry credentials or a secret path, and the secret is never recorded.
        audit.record("webhook.create", account=repository.namespace, name=repository.full_name, actor=user,
                     data={"webhook": name, "host": _host(webhook.url), "events": list(webhook.events)})
    return webhook


def webhook_update(*, webhook: Webhook, name: str | None = None, url: str | None = None,
                   events: Iterable[str] | None = None, secret: str | None = None, headers: dict | None = None,
                   active: bool | None = None) -> Webhook:
    """Change what is given (None leaves a field alone; secret "" removes the secret).

    `headers` replaces the custom headers (names left out are removed); a value of HEADER_MASK keeps
    that header's stored value. Stored values are never sent to a URL on another host unless given again.
    """
    new_url = validate_url(url) if url is not None else webhook.url
    if headers is None:
        new_headers, kept = None, [name for name, value in _mapping(webhook.headers).items() if value]
    else:
        new_headers, kept = _unmask(headers=headers, stored=webhook.headers)
    if kept and _host(new_url) != _host(webhook.url):
        # Otherwise any admin could read a credential they cannot see by pointing the hook at their own host.
        raise ValidationError({"headers": ValidationError(
            f"The URL now points to another host: enter the value of {', '.join(kept)} again (saved values "
            "are not sent to a new host), or remove the header.", code="header_new_host")})
    if name is not None:
        name = name.strip()
        if not name or len(name) > 100:
            raise ValidationError("Give the webhook a name of at most 100 characters.", code="name")
        webhook.name = name
    webhook.url = new_url
    if events is not None:
        webhook.events = validate_events(list(events))
    if secret is not None:
        webhook.secret = validate_secret(secret)
    if new_headers is not None:
        webhook.headers = new_headers
    changed = [field for field, given in (("name", name), ("url", url), ("events", events), ("secret", secret),
                                          ("headers", headers)) if given is not None]
    with transaction.atomic():
        webhook.save()
        if changed:  # which fields were given, never their values (secrets and header values stay out)
            audit.record("webhook.update", account=webhook.repository.namespace, name=webhook.repository.full_name,
                         data={"webhook": webhook.name, "host": _host(webhook.url), "fields": changed})
        if active is not None and active != webhook.active:
            webhook_set_active(webhook=webhook, active=active)
    return webhook


def webhook_set_active(*, webhook: Webhook, active: bool) -> Webhook:
    """Turn a webhook on (forgetting its failures) or off (its pending deliveries are not sent)."""
    webhook.active = active
    if active:
        webhook.consecutive_failures = 0
        webhook.disabled_reason = ""
        webhook.disabled_at = None
    elif webhook.disabled_at is None:
        webhook.disabled_at = timezone.now()
    with transaction.atomic():
        webhook.save(update_fields=["active", "consecutive_failures", "disabled_reason", "disabled_at",
                                    "updated_at"])
        audit.record("webhook.update", account=webhook.repository.namespace, name=webhook.repository.full_name,
                     data={"webhook": webhook.name, "host": _host(webhook.url), "active": active})
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Delete a webhook; its pending deliveries are cancelled, its history stays (unlinked)."""
    with transaction.atomic():
        Delivery.objects.filter(webhook=webhook, state=Delivery.State.PENDING).update(
            state=Delivery.State.CANCELLED, next_attempt_at=None, completed_at=timezone.now(),
            error="The webhook was deleted.",
        )
        audit.record("webhook.delete", account=webhook.repository.namespace, name=webhook.repository.full_name,
                     data={"webhook": webhook.name, "host": _host(webhook.url)})
        webhook.delete()


# --- Payloads -------------------------------------------------------------------------------------


def _base_url() -> str:
    return settings.HUB_PUBLIC_URL.rstrip("/")


def repository_data(repository: Repository | None = None, *, snapshot: dict | None = None,
                    status: str = "Active") -> dict:
    """Docker Hub's `repository` section, from a live repository or from a deletion snapshot."""
    if repository is not None:
        snapshot = repository_snapshot(repository)
    assert snapshot is not None
    return payloads.repository_section(
        base_url=_base_url(), namespace=snapshot["namespace"], name=snapshot["name"],
        is_private=snapshot.get("is_private", False), is_official=snapshot.get("is_official", False),
        description=snapshot.get("description", ""), full_description=snapshot.get("full_description", ""),
        star_count=snapshot.get("star_count", 0), date_created=snapshot.get("date_created", 0), status=status,
        is_trusted=snapshot.get("is_automated", False),
    )


def _new_delivery(*, webhook: Webhook, event: str, data: dict, repository_section: dict,
                  repository: Repository | None, manual: bool = False) -> Delivery:
    delivery_id = uuid.uuid4()
    callback = payloads.callback_url(base_url=_base_url(), namespace=repository_section["namespace"],
                                     name=repository_section["name"], callback_id=delivery_id.hex)
    body = payloads.encode(payloads.event_payload(event=event, callback=callback, data=data,
                                                  repository=repository_section))
    return Delivery(
        id=delivery_id, webhook=webhook, repository=repository, repository_name=repository_section["repo_name"],
        event=event, url=webhook.url, body=body.decode(), manual=manual,
        request_headers=request_headers(webhook=webhook, event=event, delivery_id=delivery_id, body=body),
        next_attempt_at=timezone.now(),
    )


def request_headers(*, webhook: Webhook, event: str, delivery_id: uuid.UUID, body: bytes) -> dict[str, str]:
    """Custom headers first, then ours (validation keeps custom ones from replacing them)."""
    headers = {name: str(value) for name, value in (webhook.headers or {}).items() if not is_reserved_header(name)}
    headers.update({
        "Content-Type": "application/json",
        "User-Agent": payloads.USER_AGENT,
        "X-Hub-Event": event,
        "X-Hub-Delivery": str(delivery_id),
        "X-Hub-Hook-Id": str(webhook.pk),
    })
    if webhook.secret:
        headers[payloads.SIGNATURE_HEADER] = payloads.sign(webhook.secret, body)
    return headers


def enqueue_on_commit(deliveries: Iterable[Delivery]) -> None:
    ids = [str(delivery.pk) for delivery in deliveries]
    if not ids:
        return

    def send() -> None:
        # One message for the lot (one event, one delivery per webhook): see sending.delivery_attempts.
        try:
            if len(ids) == 1:
                deliver_webhook_task.delay(ids[0])
            else:
                deliver_webhooks_task.delay(ids)
        except Exception:  # noqa: BLE001 - broker down: the sweep sends them later
            logger.warning("could not enqueue webhook deliveries %s; the sweep will send them", ", ".join(ids))

    transaction.on_commit(send)


def emit_event(repository: Repository, event: str, payload: dict, *,
               repository_section: dict | None = None, keep_repository_link: bool = True) -> list[Delivery]:
    """Create a delivery of `event` for every active webhook of `repository` that chose it.

    `payload` is the event's own section (`push_data`, `build_data`, …); the callback URL and the
    repository section are added per delivery. Call it inside the transaction that made the event:
    the rows commit (and are enqueued) with it, or not at all.
    """
    if event not in payloads.DATA_KEYS:
        raise ValueError(f"unknown webhook event {event!r}")
    section = repository_section or repository_data(repository)
    webhooks = [hook for hook in Webhook.objects.filter(repository=repository, active=True)
                if hook.subscribes_to(event)]
    if not webhooks:
        return []
    deliveries = [
        _new_delivery(webhook=hook, event=event, data=payload, repository_section=section,
                      repository=repository if keep_repository_link else None)
        for hook in webhooks
    ]
    with transaction.atomic():
        Delivery.objects.bulk_create(deliveries)
        enqueue_on_commit(deliveries)
    return deliveries


def push_emit(*, repository: Repository, tag, manifest, pusher) -> list[Delivery]:
    data = payloads.push_section(
        pushed_at=int(tag.pushed_at.timestamp()), pusher=pusher.username if pusher is not None else "",
        tag=tag.name, digest=manifest.digest, media_type=manifest.media_type,
    )
    return emit_event(repository, payloads.PUSH, data)


def tag_delete_emit(*, repository: Repository, tag_name: str, digest: str, user) -> list[Delivery]:
    data = {"deleted_at": int(timezone.now().timestamp()), "deleted_by": user.username if user is not None else "",
            "tag": tag_name, "digest": digest}
    return emit_event(repository, payloads.TAG_DELETE, data)


def repository_delete_emit(*, repository_snapshot: dict, user) -> list[Delivery]:
    """Called before the repository's rows go: the deliveries keep the snapshot, not the link."""
    repository = Repository.objects.filter(pk=repository_snapshot.get("id")).first()
    if repository is None:
        return []
    data = {"deleted_at": int(timezone.now().timestamp()), "deleted_by": user.username if user is not None else ""}
    section = repository_data(snapshot=repository_snapshot, status="Deleted")
    return emit_event(repository, payloads.REPOSITORY_DELETE, data, repository_section=section,
                      keep_repository_link=False)


# --- Requests made by people ----------------------------------------------------------------------


def webhook_ping(*, webhook: Webhook, user=None) -> Delivery:
    """A test delivery (event `ping`), sent even when the webhook is off."""
    data = {"hook_id": webhook.pk, "hook_name": webhook.name, "events": list(webhook.events),
            "sent_at": int(timezone.now().timestamp()), "sent_by": user.username if user is not None else ""}
    delivery = _new_delivery(webhook=webhook, event=payloads.PING, data=data,
                             repository_section=repository_data(webhook.repository),
                             repository=webhook.repository, manual=True)
    with transaction.atomic():
        delivery.save(force_insert=True)
        enqueue_on_commit([delivery])
    return delivery


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send the same body again, as a new delivery, to the webhook's current URL and headers."""
    webhook = delivery.webhook
    if webhook is None:
        raise ValidationError("The webhook of this delivery was deleted.", code="no_webhook")
    new_id = uuid.uuid4()
    body = delivery.body.encode()
    copy = Delivery(
        id=new_id, webhook=webhook, repository=delivery.repository, repository_name=delivery.repository_name,
        event=delivery.event, url=webhook.url, body=delivery.body, manual=True, redelivery_of=delivery,
        request_headers=request_headers(webhook=webhook, event=delivery.event, delivery_id=new_id, body=body),
        next_attempt_at=timezone.now(),
    )
    with transaction.atomic():
        copy.save(force_insert=True)
        enqueue_on_commit([copy])
    return copy


CALLBACK_STATES = ("success", "failure", "error")


def delivery_callback(*, delivery: Delivery, data: dict) -> Delivery:
    """Record the receiver's legacy callback (once): {state, description, context, target_url}."""
    if not isinstance(data, dict):
        raise ValidationError("Send a JSON object.", code="invalid")
    state = data.get("state")
    if state not in CALLBACK_STATES:
        raise ValidationError("state must be success, failure or error.", code="state")
    fields = {}
    for key, limit in (("description", 255), ("context", 100), ("target_url", 2000)):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str) or len(value) > limit:
            raise ValidationError(f"{key} must be a string of at most {limit} characters.", code=key)
        fields[key] = value
    target = fields["target_url"]
    if target and not target.lower().startswith(("http://", "https://")):
        raise ValidationError("target_url must be an http(s) URL.", code="target_url")
    updated = Delivery.objects.filter(pk=delivery.pk, callback_at__isnull=True).update(
        callback_state=state, callback_description=fields["description"], callback_context=fields["context"],
        callback_target_url=target, callback_at=timezone.now(),
    )
    if not updated:
        raise ValidationError("This delivery's callback was already received.", code="duplicate")
    delivery.refresh_from_db()
    return delivery
