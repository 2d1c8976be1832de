"""lib/crypto.py: authenticated encryption of stored secrets, its key file, HUB_ENCRYPTION_KEY and rotation."""

import stat

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from lib import crypto
from tests.hub.support import hub_env, settings_values

pytestmark = pytest.mark.sqlite


@pytest.fixture
def keys_dir(settings, tmp_path):
    """A private keys dir and no HUB_ENCRYPTION_KEY: the key file is made on first use."""
    settings.KEYS_DIR = tmp_path / "keys"
    settings.HUB_ENCRYPTION_KEY = ""
    return settings.KEYS_DIR


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_round_trip(keys_dir):
    stored = crypto.encrypt("s3cret ✓")
    assert stored.startswith("enc:v1:") and "s3cret" not in stored
    assert crypto.decrypt(stored) == "s3cret ✓"


def test_each_encryption_is_different(keys_dir):
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_the_key_file_is_made_once_with_mode_0600(keys_dir):
    stored = crypto.encrypt("x")
    path = keys_dir / crypto.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    crypto._cache.clear()  # a new process
    assert crypto.decrypt(stored) == "x" and path.read_bytes() == first


def test_a_legacy_plaintext_reads_as_it_is(keys_dir):
    assert crypto.decrypt("plain legacy value") == "plain legacy value"
    assert crypto.decrypt("") == ""


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_tampered_ciphertext_raises_a_clear_error(keys_dir, damage):
    stored = crypto.encrypt("s3cret")
    body = stored[len(crypto.PREFIX):]
    middle = len(body) // 2
    damaged = {
        "flip": body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1:],
        "truncate": body[:-10],
        "garbage": "not a token at all",
    }[damage]
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted") as caught:
        crypto.decrypt(crypto.PREFIX + damaged)
    assert "s3cret" not in str(caught.value) and damaged not in str(caught.value)


def test_another_key_cannot_decrypt(keys_dir, settings):
    stored = crypto.encrypt("s3cret")
    settings.HUB_ENCRYPTION_KEY = new_key()
    (keys_dir / crypto.KEY_FILE).unlink()
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(stored)


def test_the_environment_key_is_used_and_no_key_file_is_made(keys_dir, settings):
    key = new_key()
    settings.HUB_ENCRYPTION_KEY = key
    stored = crypto.encrypt("s3cret")
    assert not (keys_dir / crypto.KEY_FILE).exists()
    assert Fernet(key.encode()).decrypt(stored[len(crypto.PREFIX):].encode()) == b"s3cret"


def test_rotation_old_key_decrypts_new_key_encrypts(keys_dir, settings):
    old, new = new_key(), new_key()
    settings.HUB_ENCRYPTION_KEY = old
    before = crypto.encrypt("s3cret")
    settings.HUB_ENCRYPTION_KEY = f"{new}, {old}"
    assert crypto.decrypt(before) == "s3cret"
    after = crypto.reencrypt(before)
    settings.HUB_ENCRYPTION_KEY = new  # the old key retired
    assert crypto.decrypt(after) == "s3cret"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(before)


def test_moving_from_the_key_file_to_the_environment_keeps_old_values_readable(keys_dir, settings):
    before = crypto.encrypt("s3cret")  # with the generated key file
    settings.HUB_ENCRYPTION_KEY = new_key()
    assert crypto.decrypt(before) == "s3cret"
    after = crypto.encrypt("s3cret")
    (keys_dir / crypto.KEY_FILE).unlink()  # retired
    assert crypto.decrypt(after) == "s3cret"


def test_a_malformed_environment_key_fails_loudly(keys_dir, settings):
    settings.HUB_ENCRYPTION_KEY = "too-short"
    with pytest.raises(ImproperlyConfigured, match="HUB_ENCRYPTION_KEY: not a Fernet key") as caught:
        crypto.encrypt("x")
    assert "too-short" not in str(caught.value)


@pytest.mark.parametrize("form", ["variable", "file"])
def test_settings_read_hub_encryption_key_or_its_file(tmp_path, form):
    key = new_key()
    path = tmp_path / "encryption-key"
    path.write_text(key + "\n")
    extra = {"HUB_ENCRYPTION_KEY": key} if form == "variable" else {"HUB_ENCRYPTION_KEY_FILE": str(path)}
    values = settings_values(hub_env(tmp_path / "data", **extra), "HUB_ENCRYPTION_KEY")
    assert values["HUB_ENCRYPTION_KEY"] == key
