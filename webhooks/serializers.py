"""JSON shapes of the webhook API. Input serializers validate; the services save."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from webhooks import payloads
from webhooks.models import Delivery, Webhook
from webhooks.validation import validate_events, validate_headers, validate_secret, validate_url


def _django(validator, value):
    try:
        return validator(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class WebhookInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    hook_url = serializers.CharField(max_length=2000)
    secret = serializers.CharField(max_length=255, required=False, allow_blank=True, trim_whitespace=False,
                                   write_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(payloads.EVENTS)),
                                   required=False, default=lambda: [payloads.PUSH])
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                    required=False, default=dict)
    active = serializers.BooleanField(required=False, default=True)

    def validate_hook_url(self, value):
        return _django(validate_url, value)

    def validate_secret(self, value):
        return _django(validate_secret, value)

    def validate_events(self, value):
        return _django(validate_events, value)

    def validate_headers(self, value):
        return _django(validate_headers, value)


class WebhookSerializer(serializers.ModelSerializer):
    hook_url = serializers.CharField(source="url")
    has_secret = serializers.SerializerMethodField()
    secret_hint = serializers.CharField(read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "name", "hook_url", "events", "headers", "active", "has_secret", "secret_hint",
                  "consecutive_failures", "disabled_reason", "disabled_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_has_secret(self, webhook: Webhook) -> bool:
        return bool(webhook.secret)


class DeliverySerializer(serializers.ModelSerializer):
    payload = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = ["id", "event", "url", "state", "attempts", "next_attempt_at", "last_attempt_at", "completed_at",
                  "request_headers", "payload", "response_status", "response_headers", "response_body",
                  "duration_ms", "error", "manual", "redelivery_of", "created_at", "callback_state",
                  "callback_description", "callback_context", "callback_target_url", "callback_at"]
        read_only_fields = fields

    def get_payload(self, delivery: Delivery) -> dict:
        return json.loads(delivery.body)
