"""What the webhook edit form says about the stored secret (it said "Currently set (set)")."""

import pytest

from webhooks.forms import WebhookForm

pytestmark = pytest.mark.django_db


def secret_help(make_hook, receiver, secret: str) -> str:
    return str(WebhookForm(webhook=make_hook(receiver.url(), secret=secret)).fields["secret"].help_text)


def test_a_long_secret_is_named_by_its_last_characters(make_hook, receiver):
    assert secret_help(make_hook, receiver, "a-very-long-secret-1234") == \
        "A secret is set (ending …1234). Leave empty to keep it."


def test_a_short_secret_is_said_to_be_set_once(make_hook, receiver):
    assert secret_help(make_hook, receiver, "short") == "A secret is set. Leave empty to keep it."


def test_no_secret_says_deliveries_are_unsigned(make_hook, receiver):
    assert secret_help(make_hook, receiver, "") == \
        "No secret is set: deliveries are not signed. Enter one to sign them."
