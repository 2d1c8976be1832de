"""Outbound webhooks and the log of their deliveries.

A Delivery is a snapshot of what is (or was) sent: URL, headers and exact body. It keeps working,
and its history stays, when its webhook or its repository is deleted (the links become empty).
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from lib.fields import EncryptedJSONField, EncryptedTextField
from webhooks import payloads


class Webhook(models.Model):
    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    url = models.CharField("URL", max_length=2000)
    active = models.BooleanField(default=True)
    # Needed in clear to sign every delivery, so encrypted (lib/crypto.py); shown once, then only its hint.
    secret = EncryptedTextField(max_length=255, blank=True)
    # Encrypted too: custom headers are where receivers' credentials go (`Authorization: Bearer …`).
    headers = EncryptedJSONField(default=dict, blank=True)
    events = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    consecutive_failures = models.IntegerField(default=0)
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"

    @property
    def secret_hint(self) -> str:
        """Enough to recognise the secret, never enough to use it."""
        if not self.secret:
            return ""
        return "…" + self.secret[-4:] if len(self.secret) >= 12 else "set"

    def subscribes_to(self, event: str) -> bool:
        return isinstance(self.events, list) and event in self.events

    @property
    def event_labels(self) -> list[str]:
        return [payloads.EVENT_LABELS.get(event, event) for event in self.events]


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # Sent as X-Hub-Delivery and used (as hex) in the unguessable callback URL.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    repository = models.ForeignKey(
        "repositories.Repository", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    repository_name = models.CharField(max_length=300)  # `namespace/name`, kept when the repository goes
    event = models.CharField(max_length=32)
    url = models.CharField(max_length=2000)
    request_headers = EncryptedJSONField(default=dict)  # holds the webhook's custom headers: encrypted like them
    body = models.TextField()  # the exact JSON sent (and signed)
    manual = models.BooleanField(default=False, help_text="A test delivery or a redelivery asked for by a person.")
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)  # an excerpt
    duration_ms = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempt_log = models.JSONField(default=list, blank=True)  # [{at, status, error, duration_ms}]
    created_at = models.DateTimeField(default=timezone.now)

    # The legacy Docker Hub callback, POSTed once by the receiver to the payload's callback_url.
    callback_state = models.CharField(max_length=10, blank=True)
    callback_description = models.CharField(max_length=255, blank=True)
    callback_context = models.CharField(max_length=100, blank=True)
    callback_target_url = models.CharField(max_length=2000, blank=True)
    callback_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_history"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.url} ({self.state})"

    @property
    def callback_id(self) -> str:
        return self.id.hex

    @property
    def is_final(self) -> bool:
        return self.state != self.State.PENDING

    @property
    def event_label(self) -> str:
        return payloads.EVENT_LABELS.get(self.event, self.event)

    @property
    def pretty_body(self) -> str:
        try:
            return json.dumps(json.loads(self.body), indent=2, ensure_ascii=False)
        except ValueError:
            return self.body
