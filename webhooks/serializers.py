"""JSON shapes of the webhook API. Input serializers validate; the services save."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from webhooks import payloads, services
from webhooks.models import Delivery, Webhook
from webhooks.validation import validate_address, validate_events, validate_headers, validate_secret, validate_url


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
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, default=dict,
        help_text=f"Custom headers sent with every delivery, name → value (X-Hub-*, Host, Content-Type, "
                  f"Content-Length and User-Agent are Wharf's). The values are write-only: responses show "
                  f"each as \"{services.HEADER_MASK}\". When given, `headers` replaces the set: names left out "
                  f"are removed, and a header sent with the value \"{services.HEADER_MASK}\" keeps its saved "
                  f"value (so a webhook read with GET can be changed and sent back); any other value replaces "
                  f"it. Left out of a PATCH, the headers stay as they are. Saved values are not sent to a new "
                  f"host: a PATCH that moves `hook_url` to another host must give them again (or remove them).",
    )
    active = serializers.BooleanField(required=False, default=True)

    def validate_hook_url(self, value):
        # A new URL is checked against the address rules; an unchanged one is left to the deliveries.
        if self.instance is not None and (value or "").strip() == self.instance.url:
            return _django(validate_url, value)
        return _django(validate_address, value)

    def validate_secret(self, value):
        return _django(validate_secret, value)

    def validate_events(self, value):
        return _django(validate_events, value)

    def validate_headers(self, value):
        return _django(validate_headers, value)


class MaskedHeadersField(serializers.DictField):
    """A webhook's custom headers, every value replaced by the mask."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(), read_only=True, **kwargs)

    def to_representation(self, value):
        return services.headers_masked(value)


class MaskedRequestHeadersField(MaskedHeadersField):
    """The headers a delivery sent: Wharf's own in clear, the custom ones masked."""

    def to_representation(self, value):
        return services.request_headers_masked(value)


class WebhookSerializer(serializers.ModelSerializer):
    hook_url = serializers.CharField(source="url")
    headers = MaskedHeadersField(
        help_text=f"The custom header names; every value is shown as \"{services.HEADER_MASK}\" (write-only, "
                  f"like the secret). Send a header back with that value to keep its saved value.")
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
    request_headers = MaskedRequestHeadersField(
        help_text=f"The request's headers. Wharf's own (X-Hub-Event, X-Hub-Delivery, X-Hub-Hook-Id, "
                  f"X-Hub-Signature-256, User-Agent, Content-Type) are shown; the webhook's custom header values "
                  f"are shown as \"{services.HEADER_MASK}\" (the real ones were sent).")

    class Meta:
        model = Delivery
        fields = ["id", "event", "url", "state", "attempts", "next_attempt_at", "last_attempt_at", "completed_at",
                  "request_headers", "payload", "response_status", "response_headers", "response_body",
                  "duration_ms", "error", "manual", "redelivery_of", "created_at", "callback_state",
                  "callback_description", "callback_context", "callback_target_url", "callback_at"]
        read_only_fields = fields

    def get_payload(self, delivery: Delivery) -> dict:
        return json.loads(delivery.body)
