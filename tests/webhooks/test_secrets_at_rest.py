"""Webhook secrets and custom headers (and the headers kept per delivery) are encrypted in the database."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from lib import crypto
from tests.at_rest import migrate, raw, write_raw
from webhooks import services
from webhooks.models import Delivery, Webhook

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

SECRET = "hook-secret-0123456789"
TOKEN = "Bearer receiver-token-abcdef"


@pytest.fixture
def hook(make_hook):
    return make_hook("https://ci.example.com/h", secret=SECRET, headers={"Authorization": TOKEN})


def test_secret_and_headers_read_back_in_clear(hook):
    loaded = Webhook.objects.get(pk=hook.pk)
    assert loaded.secret == SECRET and loaded.headers == {"Authorization": TOKEN}


def test_the_columns_hold_ciphertext(hook):
    for column in ("secret", "headers"):
        stored = raw("webhooks_webhook", column, hook.pk)
        assert stored.startswith("enc:v1:")
        assert SECRET not in stored and "receiver-token" not in stored


def test_an_empty_secret_stays_empty(make_hook):
    hook = make_hook("https://ci.example.com/h")
    assert raw("webhooks_webhook", "secret", hook.pk) == ""
    assert Webhook.objects.filter(secret="").get() == hook


def test_encrypted_values_cannot_be_searched(hook):
    with pytest.raises(TypeError, match="encrypted"):
        Webhook.objects.filter(secret=SECRET).exists()


def test_the_delivery_snapshot_of_the_headers_is_encrypted(hook):
    delivery = services.webhook_ping(webhook=hook)
    stored = raw("webhooks_delivery", "request_headers", delivery.pk.hex if connection.vendor == "sqlite"
                 else delivery.pk)
    assert stored.startswith("enc:v1:") and "receiver-token" not in stored
    assert Delivery.objects.get(pk=delivery.pk).request_headers["Authorization"] == TOKEN


def test_tampered_ciphertext_raises_instead_of_returning_garbage(hook):
    stored = raw("webhooks_webhook", "secret", hook.pk)
    flipped = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    write_raw("webhooks_webhook", "secret", hook.pk, flipped)
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted"):
        Webhook.objects.get(pk=hook.pk)


def test_a_legacy_plaintext_row_still_reads(hook):
    write_raw("webhooks_webhook", "secret", hook.pk, "legacy-secret")
    write_raw("webhooks_webhook", "headers", hook.pk, json.dumps({"X-Token": "legacy"}))
    loaded = Webhook.objects.get(pk=hook.pk)
    assert loaded.secret == "legacy-secret" and loaded.headers == {"X-Token": "legacy"}
    loaded.save()
    assert raw("webhooks_webhook", "secret", hook.pk).startswith("enc:v1:")


def test_the_admin_never_shows_secret_or_headers(client, hook, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    delivery = services.webhook_ping(webhook=hook)
    pages = [client.get(f"/admin/webhooks/webhook/{hook.pk}/change/"),
             client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/")]
    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert SECRET not in text and "receiver-token" not in text


def test_the_api_never_returns_the_secret(client, alice, hook):
    from hub.api import issue_api_token

    response = client.get(f"/v2/repositories/{hook.repository.full_name}/webhooks/{hook.pk}/",
                          HTTP_AUTHORIZATION=f"Bearer {issue_api_token(user=alice)}")
    assert response.status_code == 200
    assert SECRET not in response.content.decode() and response.json()["has_secret"] is True


def test_the_api_shows_the_header_names_with_masked_values(client, alice, hook):
    """Write-only like the secret (tests/webhooks/test_header_masking.py has the whole contract)."""
    from hub.api import issue_api_token

    response = client.get(f"/v2/repositories/{hook.repository.full_name}/webhooks/{hook.pk}/",
                          HTTP_AUTHORIZATION=f"Bearer {issue_api_token(user=alice)}")
    assert response.json()["headers"] == {"Authorization": services.HEADER_MASK}
    assert TOKEN not in response.content.decode()


# --- The migration -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_legacy_rows_and_reverses(alice_namespace):
    from tests.factories import RepositoryFactory

    repository = RepositoryFactory(namespace=alice_namespace, name="legacy")
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("webhooks")
    try:
        old = migrate([("webhooks", "0001_initial")])
        hook = old.get_model("webhooks", "Webhook").objects.create(
            repository_id=repository.pk, name="ci", url="https://ci.example.com/h", secret="legacy-secret",
            headers={"X-Token": "legacy-token"}, events=["push"])
        assert raw("webhooks_webhook", "secret", hook.pk) == "legacy-secret"

        migrate([("webhooks", "0003_encrypt_existing_secrets")])
        for column in ("secret", "headers"):
            stored = raw("webhooks_webhook", column, hook.pk)
            assert stored.startswith("enc:v1:") and "legacy" not in stored
        loaded = Webhook.objects.get(pk=hook.pk)
        assert loaded.secret == "legacy-secret" and loaded.headers == {"X-Token": "legacy-token"}

        old = migrate([("webhooks", "0001_initial")])
        back = old.get_model("webhooks", "Webhook").objects.get(pk=hook.pk)
        assert back.secret == "legacy-secret" and back.headers == {"X-Token": "legacy-token"}
    finally:
        migrate(latest)
