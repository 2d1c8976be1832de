"""Web forms for webhooks. They parse and validate; the services save."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from webhooks import payloads
from webhooks.services import HEADER_MASK
from webhooks.validation import parse_header_lines, validate_address, validate_secret, validate_url

EVENT_CHOICES = [(event, payloads.EVENT_LABELS[event]) for event in payloads.EVENTS]


def secret_help(webhook) -> str:
    """What the edit form says about the stored secret (its hint is "set" when too short to show an end)."""
    if not webhook.secret:
        return "No secret is set: deliveries are not signed. Enter one to sign them."
    hint = webhook.secret_hint
    shown = f" (ending {hint})" if hint.startswith("…") else ""
    return f"A secret is set{shown}. Leave empty to keep it."


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="For you: shown in the list and the delivery history.")
    url = forms.CharField(
        label="Webhook URL", max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://ci.example.com/hooks/wharf", "class": "mono"}),
        help_text="http:// or https://. Redirects are not followed; loopback and private addresses are refused "
                  "unless the hub's administrator allows them.",
    )
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple, initial=[payloads.PUSH],
        help_text="Deliveries are sent for the events you choose.",
    )
    secret = forms.CharField(
        required=False, max_length=255, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each delivery: X-Hub-Signature-256 is sha256=HMAC-SHA256(secret, body). "
                  "Shown only now; afterwards only its last characters.",
    )
    headers = forms.CharField(
        label="Custom headers", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "placeholder": "Authorization: Bearer …"}),
        help_text="One “Name: value” per line. X-Hub-*, Host, Content-Type, Content-Length and User-Agent "
                  "are set by Wharf.",
    )
    active = forms.BooleanField(required=False, initial=True, label="Active",
                                help_text="Send deliveries when the events happen.")

    def __init__(self, *args, webhook=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.webhook = webhook
        if webhook is not None:
            self.fields["secret"].help_text = secret_help(webhook)
            self.fields["headers"].help_text = (
                f"One “Name: value” per line. Saved values are hidden: a value left as {HEADER_MASK} is kept; "
                "type a new one to change it, or remove the line to remove the header. A URL on another host "
                "needs them typed again."
            )
            self.fields["clear_secret"] = forms.BooleanField(
                required=False, label="Remove the secret", help_text="Deliveries will no longer be signed.")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        # A new URL is checked against the address rules; an unchanged one is left to the deliveries.
        if self.webhook is not None and url.strip() == self.webhook.url:
            return validate_url(url)
        return validate_address(url)

    def clean_secret(self) -> str:
        return validate_secret(self.cleaned_data.get("secret", ""))

    def clean_headers(self) -> dict:
        return parse_header_lines(self.cleaned_data.get("headers", ""))

    def clean(self):
        data = super().clean()
        if data.get("clear_secret") and data.get("secret"):
            raise ValidationError("Either enter a new secret or remove it, not both.")
        return data

    def secret_change(self) -> str | None:
        """The secret to store: None keeps the current one (edit form), "" removes it."""
        if self.webhook is None:
            return self.cleaned_data["secret"]
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data["secret"] or None
