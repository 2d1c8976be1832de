"""Encryption at rest for the secrets the site must read back (webhook secrets, deploy keys, build secrets).

Authenticated encryption with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`). A stored value is
`enc:v1:<Fernet token>`; a value without that prefix is a legacy plaintext, returned as it is (the
migrations encrypt them). A token that fails authentication raises DecryptionError, never garbage.

Keys, first one encrypts and every one decrypts (MultiFernet):
- settings.HUB_ENCRYPTION_KEY (env `HUB_ENCRYPTION_KEY` or `HUB_ENCRYPTION_KEY_FILE`): comma-separated Fernet
  keys, the current one first, the retired ones after it (rotation);
- then `KEYS_DIR/encryption.key`, made on first use (mode 0600) when HUB_ENCRYPTION_KEY is unset, and kept for
  decryption when it is set, so switching to the variable loses nothing. Delete the file to retire its key
  once `manage.py reencrypt_secrets` has run.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from lib.keyfiles import create_exclusively

PREFIX = "enc:v1:"
KEY_FILE = "encryption.key"

_cache: dict[tuple[str, str], MultiFernet] = {}
_cache_lock = threading.Lock()


class DecryptionError(Exception):
    """A stored secret that no configured key can authenticate (wrong key, or tampered data)."""


def _fernet(key: str, origin: str) -> Fernet:
    try:
        return Fernet(key.strip().encode())
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{origin}: not a Fernet key (32 url-safe base64-encoded bytes); make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


def _load_keys(configured: str, directory: Path) -> MultiFernet:
    fernets = [_fernet(key, "HUB_ENCRYPTION_KEY") for key in configured.split(",") if key.strip()]
    path = directory / KEY_FILE
    if not fernets and not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_exclusively(path, Fernet.generate_key() + b"\n")  # another process's key wins
    if path.exists():
        fernets.append(_fernet(path.read_text(), str(path)))
    return MultiFernet(fernets)


def keys() -> MultiFernet:
    """The site's encryption keys (see the module docstring), loaded once per process and configuration."""
    configured = getattr(settings, "HUB_ENCRYPTION_KEY", "") or ""
    cache_key = (configured, str(settings.KEYS_DIR))
    cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    with _cache_lock:
        cached = _cache.get(cache_key)
        if cached is None:
            cached = _cache[cache_key] = _load_keys(configured, Path(settings.KEYS_DIR))
    return cached


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(plaintext: str) -> str:
    """`enc:v1:<token>`, encrypted with the current key."""
    return PREFIX + keys().encrypt(plaintext.encode()).decode("ascii")


def decrypt(value: str) -> str:
    """The plaintext of a stored value; a legacy value (no prefix) is returned unchanged."""
    if not is_encrypted(value):
        return value
    try:
        return keys().decrypt(value[len(PREFIX):].encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "a stored secret cannot be decrypted: it was encrypted with a key that is not configured "
            "(HUB_ENCRYPTION_KEY, keys/encryption.key) or it was altered"
        ) from None


def reencrypt(value: str) -> str:
    """A stored value (encrypted with any configured key, or legacy plaintext) encrypted with the current key."""
    return encrypt(decrypt(value))
