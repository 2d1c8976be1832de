"""The "keys" readiness check: a node whose secrets are not the cluster's is kept out of rotation
(hub/keycheck.py). In-process tests change this process's settings to play another node; the last
tests run real processes, each with a data dir (and so keys) of its own, on one database."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings

from hub import keycheck
from hub.models import KeyFingerprint
from registry.tokens import get_signing_key
from tests.hub.support import hub_env, run_django

pytestmark = pytest.mark.sqlite

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
SECRET_A = "a-secret-key-" + "a" * 50
SECRET_B = "b-secret-key-" + "b" * 50


@pytest.fixture(autouse=True)
def fresh():
    """No verdict remembered from another test, and no fingerprint recorded by a live hub."""
    keycheck.reset_process_cache()
    yield
    keycheck.reset_process_cache()


@pytest.fixture
def cluster(db):
    """The cluster as this process (SECRET_A, KEY_A, its own keys/) first recorded it."""
    KeyFingerprint.objects.all().delete()
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        keycheck.check()
        yield
    keycheck.reset_process_cache()


def other_keys_dir(tmp_path: Path, *, without: tuple[str, ...]) -> Path:
    """A copy of this process's keys/ without the named files (made anew on first use)."""
    target = tmp_path / "keys"
    shutil.copytree(settings.KEYS_DIR, target, ignore=shutil.ignore_patterns(*without))
    return target


def readyz(client) -> tuple[int, str]:
    response = client.get("/readyz")
    return response.status_code, response.json()["checks"]["keys"]


def test_the_first_node_records_a_fingerprint_of_each_secret(cluster):
    rows = {row.name: row for row in KeyFingerprint.objects.all()}
    assert set(rows) == {keycheck.TOKEN_KEY, keycheck.SECRET_KEY, keycheck.ENCRYPTION_KEY, keycheck.IMAGE_KEY}
    assert rows[keycheck.TOKEN_KEY].fingerprint == get_signing_key().kid
    assert all(str(settings.DATA_DIR) in row.recorded_by for row in rows.values())


def test_a_node_with_the_same_keys_is_ready(cluster, client):
    recorded = {row.name: row.recorded_at for row in KeyFingerprint.objects.all()}
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        assert readyz(client) == (200, "ok")
    assert {row.name: row.recorded_at for row in KeyFingerprint.objects.all()} == recorded


def test_another_token_signing_key_is_reported(cluster, client, tmp_path):
    keys_dir = other_keys_dir(tmp_path, without=("registry-token.*",))
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A, KEYS_DIR=keys_dir):
        status, message = readyz(client)
    assert status == 503
    assert message.startswith("error: this node's token signing key differs from the cluster's (first recorded at ")
    assert "copy keys/ from a running node" in message and "registry-token.key" in message
    for other in ("SECRET_KEY or", "encryption key", "image signing key"):
        assert other not in message


def test_another_secret_key_is_reported(cluster, client):
    with override_settings(SECRET_KEY=SECRET_B, HUB_ENCRYPTION_KEY=KEY_A):
        status, message = readyz(client)
    assert status == 503
    assert message.startswith("error: this node's SECRET_KEY differs from the cluster's")
    assert "token signing key" not in message and "encryption key differs" not in message


def test_another_encryption_key_is_reported(cluster, client):
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_B):
        status, message = readyz(client)
    assert status == 503
    assert message.startswith("error: this node's encryption key differs from the cluster's")
    assert "HUB_ENCRYPTION_KEY or keys/encryption.key" in message


def test_every_differing_secret_is_named(cluster, client, tmp_path):
    keys_dir = other_keys_dir(tmp_path, without=("registry-token.*", "image-signing.key"))
    with override_settings(SECRET_KEY=SECRET_B, HUB_ENCRYPTION_KEY=KEY_B, KEYS_DIR=keys_dir):
        status, message = readyz(client)
    assert status == 503
    assert message.startswith("error: this node's token signing key, SECRET_KEY, encryption key and image signing "
                              "key differ from the cluster's")


def test_the_other_checks_and_requests_are_not_affected(cluster, client):
    with override_settings(SECRET_KEY=SECRET_B, HUB_ENCRYPTION_KEY=KEY_A):
        response = client.get("/readyz")
        assert {name: value for name, value in response.json()["checks"].items() if name != "keys"} == {
            "database": "ok", "storage": "ok", "cache": "ok", "broker": "ok"}
        assert client.get("/healthz").status_code == 200
        assert client.get("/v2/").status_code == 401  # served as ever


def test_a_fingerprint_reveals_no_secret(cluster):
    rows = {row.name: row.fingerprint for row in KeyFingerprint.objects.all()}
    for name, secret, raw in ((keycheck.SECRET_KEY, SECRET_A, SECRET_A.encode()),
                              (keycheck.ENCRYPTION_KEY, KEY_A, base64.urlsafe_b64decode(KEY_A))):
        stored = rows[name]
        assert secret not in stored
        for plain in (secret.encode(), raw):
            for digest in (hashlib.sha256, hashlib.sha512, hashlib.sha1, hashlib.md5):
                assert digest(plain).hexdigest() not in stored
        assert stored.startswith("hmac-sha256:") and len(stored) == len("hmac-sha256:") + 64
    private_pem = (Path(settings.KEYS_DIR) / "registry-token.key").read_text()
    assert rows[keycheck.TOKEN_KEY] not in private_pem and "PRIVATE" not in rows[keycheck.TOKEN_KEY]


def test_a_mismatch_keeps_being_reported_and_a_verdict_costs_no_query_until_the_recheck(
        cluster, django_assert_num_queries, monkeypatch):
    with override_settings(SECRET_KEY=SECRET_B, HUB_ENCRYPTION_KEY=KEY_A):
        with pytest.raises(keycheck.KeysDiffer):
            keycheck.check()
        with django_assert_num_queries(0), pytest.raises(keycheck.KeysDiffer, match="SECRET_KEY differs"):
            keycheck.check()
        monkeypatch.setattr(keycheck, "RECHECK_SECONDS", 0)
        with django_assert_num_queries(1), pytest.raises(keycheck.KeysDiffer, match="SECRET_KEY differs"):
            keycheck.check()
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        keycheck.check()  # the cluster's keys again
        monkeypatch.setattr(keycheck, "RECHECK_SECONDS", 30)
        with django_assert_num_queries(0):
            keycheck.check()


def test_a_good_verdict_is_rechecked(cluster, monkeypatch):
    """Another node moving the record on (a rotation) reaches this node at its next recheck."""
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        keycheck.check()
        KeyFingerprint.objects.filter(name=keycheck.SECRET_KEY).update(
            fingerprint=keycheck.secret_key_fingerprint(SECRET_B))
        keycheck.check()  # remembered
        monkeypatch.setattr(keycheck, "RECHECK_SECONDS", 0)
        with pytest.raises(keycheck.KeysDiffer, match="SECRET_KEY differs"):
            keycheck.check()


def test_a_rotated_key_moves_the_record_and_the_nodes_on_the_old_key_are_reported(cluster, client):
    with override_settings(SECRET_KEY=SECRET_B, SECRET_KEY_FALLBACKS=[SECRET_A], HUB_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}"):
        assert readyz(client) == (200, "ok")
    rows = {row.name: row.fingerprint for row in KeyFingerprint.objects.all()}
    assert rows[keycheck.SECRET_KEY] == keycheck.secret_key_fingerprint(SECRET_B)
    assert rows[keycheck.ENCRYPTION_KEY] == keycheck.encryption_key_fingerprint(KEY_B)
    keycheck.reset_process_cache()
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        status, message = readyz(client)
    assert status == 503 and "SECRET_KEY and encryption key differ" in message


def test_forget_lets_the_next_node_record_its_keys(cluster, client):
    assert keycheck.forget(keycheck.SECRET_KEY) == 1
    with override_settings(SECRET_KEY=SECRET_B, HUB_ENCRYPTION_KEY=KEY_A):
        assert readyz(client) == (200, "ok")
    assert KeyFingerprint.objects.get(name=keycheck.SECRET_KEY).fingerprint == keycheck.secret_key_fingerprint(
        SECRET_B)


def test_a_fingerprint_recorded_meanwhile_by_another_node_wins(db):
    """Two nodes recording at once: the insert that loses is ignored, and the loser reads the winner's."""
    KeyFingerprint.objects.all().delete()
    with override_settings(SECRET_KEY=SECRET_A, HUB_ENCRYPTION_KEY=KEY_A):
        mine = keycheck.node_fingerprints()
    theirs = {**mine, keycheck.SECRET_KEY: keycheck.Fingerprint(keycheck.secret_key_fingerprint(SECRET_B))}
    real_filter = KeyFingerprint.objects.filter
    calls = []

    def filter_after_the_other_node_recorded(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # this node read nothing; the other node records before this one inserts
            result = list(real_filter(*args, **kwargs))
            assert result == []
            from django.utils import timezone
            KeyFingerprint.objects.bulk_create([
                KeyFingerprint(name=name, fingerprint=fingerprint.current, recorded_at=timezone.now(),
                               recorded_by="other:/data") for name, fingerprint in theirs.items()])
            return real_filter(pk__in=[])
        return real_filter(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeyFingerprint.objects, "filter", filter_after_the_other_node_recorded)
        mismatches = keycheck.compare(mine)
    assert [(m.name, m.recorded_by) for m in mismatches] == [(keycheck.SECRET_KEY, "other:/data")]
    assert KeyFingerprint.objects.get(name=keycheck.SECRET_KEY).recorded_by == "other:/data"


# --- Real processes, one database -------------------------------------------------------------------

PROBE = (
    "import json\n"
    "from django.test import Client\n"
    "response = Client().get('/readyz')\n"
    "print(json.dumps({'status': response.status_code, 'keys': response.json()['checks']['keys']}))\n"
)


def probe(env: dict[str, str]) -> tuple[dict, str]:
    result = run_django(env, PROBE)
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_a_node_started_without_the_copied_keys_is_kept_out_of_rotation(data_dir, tmp_path):
    database = f"sqlite:///{data_dir / 'hub.sqlite3'}"
    first = hub_env(data_dir)
    answer, _ = probe(first)
    assert answer == {"status": 200, "keys": "ok"}

    # A second node on the same database, started with a data dir of its own and no keys/: it makes its own.
    stray_dir = tmp_path / "stray"
    answer, log = probe(hub_env(stray_dir, DATABASE_URL=database))
    assert answer["status"] == 503
    assert answer["keys"].startswith("error: this node's token signing key, SECRET_KEY, encryption key and image "
                                     "signing key differ from the cluster's (")
    assert f":{data_dir.resolve()}" in answer["keys"]  # who recorded the cluster's keys
    assert "ERROR hub.keycheck this node's token signing key" in log

    # The documented way: keys/ copied from the first node.
    copied_dir = tmp_path / "copied"
    copied_dir.mkdir()
    shutil.copytree(data_dir / "keys", copied_dir / "keys")
    answer, log = probe(hub_env(copied_dir, DATABASE_URL=database))
    assert answer == {"status": 200, "keys": "ok"}
    assert "ERROR" not in log

    # Copied keys/, but a SECRET_KEY of its own in the environment.
    answer, _ = probe(hub_env(copied_dir, DATABASE_URL=database, SECRET_KEY="x" * 60))
    assert answer["status"] == 503
    assert answer["keys"].startswith("error: this node's SECRET_KEY differs from the cluster's")


def test_the_message_names_each_record_when_they_differ():
    from datetime import UTC, datetime

    one, two = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    same = keycheck.describe([keycheck.Mismatch(keycheck.TOKEN_KEY, one, "a:/data"),
                              keycheck.Mismatch(keycheck.IMAGE_KEY, one, "a:/data")])
    assert same.startswith("this node's token signing key and image signing key differ from the cluster's "
                           "(first recorded at 2026-01-02 03:04:05 UTC by a:/data); copy keys/")
    apart = keycheck.describe([keycheck.Mismatch(keycheck.TOKEN_KEY, one, "a:/data"),
                               keycheck.Mismatch(keycheck.SECRET_KEY, two, "b:/data")])
    assert ("(token signing key first recorded at 2026-01-02 03:04:05 UTC by a:/data; SECRET_KEY first recorded "
            "at 2026-02-03 04:05:06 UTC by b:/data)") in apart
