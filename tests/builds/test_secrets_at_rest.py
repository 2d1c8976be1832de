"""Build sources' webhook secrets and deploy keys, and build rules' secrets, are encrypted in the database."""

import hashlib
import hmac
import io
import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from builds.models import BuildRule, BuildSource
from lib import crypto
from tests.at_rest import migrate, raw, write_raw
from tests.builds.conftest import api_client

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

HOOK_SECRET = "hook-secret-0123456789"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nprivate-key-material\n-----END OPENSSH PRIVATE KEY-----\n"
BUILD_SECRETS = {"NPM_TOKEN": "npm-token-abcdef", "PIP_INDEX": "pip-password-123456"}
PLAINTEXTS = (HOOK_SECRET, "private-key-material", "npm-token-abcdef", "pip-password-123456")


@pytest.fixture
def source(linked):
    source, _ = linked
    source.webhook_secret = HOOK_SECRET
    source.deploy_private_key = PRIVATE_KEY
    source.save()
    return source


@pytest.fixture
def rule(source):
    rule = BuildRule.objects.get(repository=source.repository)
    rule.secrets = BUILD_SECRETS
    rule.save()
    return rule


def test_values_read_back_in_clear(source, rule):
    loaded = BuildSource.objects.get(pk=source.pk)
    assert loaded.webhook_secret == HOOK_SECRET and loaded.deploy_private_key == PRIVATE_KEY
    assert BuildRule.objects.get(pk=rule.pk).secrets == BUILD_SECRETS


def test_the_columns_hold_ciphertext(source, rule):
    stored = [raw("builds_buildsource", "webhook_secret", source.pk),
              raw("builds_buildsource", "deploy_private_key", source.pk),
              raw("builds_buildrule", "secrets", rule.pk)]
    for value in stored:
        assert value.startswith("enc:v1:")
        assert not any(plain in value for plain in PLAINTEXTS)


def test_a_source_without_secret_or_key_stores_empty_strings(linked):
    source, _ = linked
    assert raw("builds_buildsource", "webhook_secret", source.pk) == ""
    assert raw("builds_buildsource", "deploy_private_key", source.pk) == ""


def test_tampered_ciphertext_raises_instead_of_returning_garbage(rule):
    stored = raw("builds_buildrule", "secrets", rule.pk)
    write_raw("builds_buildrule", "secrets", rule.pk, stored[:20] + stored[21:])
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted"):
        BuildRule.objects.get(pk=rule.pk)


def test_legacy_plaintext_rows_still_read(source, rule):
    write_raw("builds_buildsource", "webhook_secret", source.pk, "legacy-secret")
    write_raw("builds_buildrule", "secrets", rule.pk, json.dumps({"TOKEN": "legacy"}))
    assert BuildSource.objects.get(pk=source.pk).webhook_secret == "legacy-secret"
    assert BuildRule.objects.get(pk=rule.pk).secrets == {"TOKEN": "legacy"}


def test_a_valid_signature_still_verifies_and_the_secret_is_not_logged(client, source, caplog):
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"ref": "refs/heads/main", "default_branch": "main"}).encode()
    token = source.rotate_token()
    source.save()
    signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(f"/api/build/{source.uuid}/trigger/{token}/", data=body,
                           content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature)
    assert response.status_code == 202, response.content
    assert HOOK_SECRET not in caplog.text


def test_the_api_never_returns_the_secrets(source, rule, alice):
    client = api_client(alice)
    base = f"/v2/repositories/{source.repository.full_name}"
    bodies = [client.get(f"{base}/build-source/"), client.get(f"{base}/build-rules/")]
    for response in bodies:
        assert response.status_code == 200
        assert not any(plain in response.content.decode() for plain in PLAINTEXTS)
    assert bodies[0].json()["has_webhook_secret"] is True
    assert bodies[1].json()[0]["secret_names"] == sorted(BUILD_SECRETS)


def test_reencrypt_secrets_moves_rows_to_the_new_key(settings, source, rule):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HUB_ENCRYPTION_KEY = old
    source.save()
    rule.save()
    settings.HUB_ENCRYPTION_KEY = f"{new},{old}"
    output = io.StringIO()
    call_command("reencrypt_secrets", stdout=output)
    assert "builds.BuildRule.secrets: 1 re-encrypted" in output.getvalue()
    settings.HUB_ENCRYPTION_KEY = new
    loaded = BuildSource.objects.get(pk=source.pk)
    assert loaded.webhook_secret == HOOK_SECRET and loaded.deploy_private_key == PRIVATE_KEY
    assert BuildRule.objects.get(pk=rule.pk).secrets == BUILD_SECRETS


# --- The migration -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_legacy_rows_and_reverses(repository):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = migrate([("builds", "0001_initial")])
        source = old.get_model("builds", "BuildSource").objects.create(
            repository_id=repository.pk, url="git@git.example.com:a/b.git", token_hash="0" * 64,
            webhook_secret=HOOK_SECRET, deploy_private_key=PRIVATE_KEY)
        rule = old.get_model("builds", "BuildRule").objects.create(
            repository_id=repository.pk, source="main", secrets=BUILD_SECRETS)
        assert raw("builds_buildsource", "webhook_secret", source.pk) == HOOK_SECRET

        migrate([("builds", "0003_encrypt_existing_secrets")])
        for table, column, pk in [("builds_buildsource", "webhook_secret", source.pk),
                                  ("builds_buildsource", "deploy_private_key", source.pk),
                                  ("builds_buildrule", "secrets", rule.pk)]:
            stored = raw(table, column, pk)
            assert stored.startswith("enc:v1:") and not any(plain in stored for plain in PLAINTEXTS)
        new = migrate([("builds", "0003_encrypt_existing_secrets")])
        loaded = new.get_model("builds", "BuildSource").objects.get(pk=source.pk)
        assert loaded.webhook_secret == HOOK_SECRET and loaded.deploy_private_key == PRIVATE_KEY
        assert new.get_model("builds", "BuildRule").objects.get(pk=rule.pk).secrets == BUILD_SECRETS

        old = migrate([("builds", "0001_initial")])
        assert raw("builds_buildsource", "webhook_secret", source.pk) == HOOK_SECRET
        assert old.get_model("builds", "BuildRule").objects.get(pk=rule.pk).secrets == BUILD_SECRETS
    finally:
        migrate(latest)
