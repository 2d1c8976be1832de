"""Does this node hold the cluster's secrets? The "keys" readiness check (README, "Scale-out").

Every web node must sign tokens, sessions and images and encrypt stored secrets with the same keys
(the environment, or `$HUB_DATA_DIR/keys/` copied from the first node). A node started without the
copied keys makes its own on first use and works on its own, but its tokens are refused by the
other nodes (intermittent 401s behind a round-robin balancer), its sessions are not theirs and it
cannot read the secrets they encrypt. This module catches that:

- the first node to check records a fingerprint of each shared secret in the database
  (`KeyFingerprint`, one row per secret, inserted if absent: race-free on SQLite and PostgreSQL);
- every node compares its own with the recorded ones, and `/readyz` answers 503 on a node whose
  keys differ, naming the secret, until that node runs with the cluster's keys.

A fingerprint never reveals a secret: the token and image signing keys are known by their public
key (the libtrust key id, the SHA-256 of the public key), SECRET_KEY and the encryption key by an
HMAC of a fixed label made with the key.

Rotation: a node whose retired keys (SECRET_KEY_FALLBACKS, the encryption keys after the first)
include the recorded one moves the record to its current key; the nodes still on the old key are
then reported until they get the new one. A key replaced on purpose everywhere without a fallback
(the token signing key has none): forget the record (`manage.py shell -c "from hub.keycheck import
forget; forget()"`) and the next node to check records the new one.

The verdict is kept per process for RECHECK_SECONDS: one query every 30 s, not one per probe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.utils import timezone
from django.utils.crypto import salted_hmac

from builds.signing import image_signing_key
from hub.models import KeyFingerprint
from lib import crypto
from registry.tokens import get_signing_key

logger = logging.getLogger(__name__)

TOKEN_KEY = "token signing key"
SECRET_KEY = "SECRET_KEY"
ENCRYPTION_KEY = "encryption key"
IMAGE_KEY = "image signing key"
RECHECK_SECONDS = 30.0
LABEL = "wharf.hub.keycheck: the cluster's shared secret"

# Where each secret comes from, for the operator.
SOURCES = {
    TOKEN_KEY: "keys/registry-token.key and keys/registry-token.crt",
    SECRET_KEY: "SECRET_KEY or keys/secret_key",
    ENCRYPTION_KEY: "HUB_ENCRYPTION_KEY or keys/encryption.key",
    IMAGE_KEY: "keys/image-signing.key",
}


class KeysDiffer(Exception):
    """This node's keys are not the cluster's; the message says which and what to do."""


@dataclass(frozen=True)
class Fingerprint:
    current: str
    previous: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mismatch:
    name: str
    recorded_at: datetime
    recorded_by: str


# --- This node's fingerprints -------------------------------------------------------------------


def hmac_fingerprint(key: bytes) -> str:
    """An HMAC-SHA256 of a fixed label made with `key`: the same for the same key, and telling
    nothing of the key (it is not a hash of the key)."""
    return "hmac-sha256:" + hmac.new(key, LABEL.encode(), hashlib.sha256).hexdigest()


def secret_key_fingerprint(secret_key: str) -> str:
    return "hmac-sha256:" + salted_hmac(LABEL, SECRET_KEY, secret=secret_key, algorithm="sha256").hexdigest()


def encryption_key_fingerprint(fernet_key: str) -> str:
    return hmac_fingerprint(base64.urlsafe_b64decode(fernet_key.strip().encode()))


def public_key_fingerprint(private_key: ec.EllipticCurvePrivateKey) -> str:
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _encryption_keys() -> list[str]:
    """The Fernet keys this process encrypts with (first) and decrypts with, as lib/crypto reads them."""
    crypto.keys()  # makes keys/encryption.key when nothing is configured, and validates every key
    configured = [key.strip() for key in (getattr(settings, "HUB_ENCRYPTION_KEY", "") or "").split(",") if key.strip()]
    path = Path(settings.KEYS_DIR) / crypto.KEY_FILE
    if path.exists():
        configured.append(path.read_text().strip())
    return configured


_node_cache: dict[tuple, dict[str, Fingerprint]] = {}


def node_fingerprints() -> dict[str, Fingerprint]:
    """This process's fingerprint of each shared secret (computed once per configuration)."""
    configuration = (settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()),
                     getattr(settings, "HUB_ENCRYPTION_KEY", "") or "", str(settings.KEYS_DIR))
    cached = _node_cache.get(configuration)
    if cached is not None:
        return cached
    encryption = [encryption_key_fingerprint(key) for key in _encryption_keys()]
    fingerprints = {
        TOKEN_KEY: Fingerprint(get_signing_key().kid),
        SECRET_KEY: Fingerprint(secret_key_fingerprint(settings.SECRET_KEY),
                                tuple(secret_key_fingerprint(key) for key in configuration[1])),
        ENCRYPTION_KEY: Fingerprint(encryption[0], tuple(encryption[1:])),
        IMAGE_KEY: Fingerprint(public_key_fingerprint(image_signing_key(settings.KEYS_DIR))),
    }
    _node_cache[configuration] = fingerprints
    return fingerprints


def node_name() -> str:
    """Who recorded a fingerprint: the host and the data dir (nodes may share a host)."""
    return f"{socket.gethostname()}:{settings.DATA_DIR}"[:200]


# --- Against the cluster's ----------------------------------------------------------------------


def compare(mine: dict[str, Fingerprint] | None = None) -> list[Mismatch]:
    """Record the fingerprints nobody recorded yet, and return the secrets where this node differs."""
    mine = mine if mine is not None else node_fingerprints()
    recorded = {row.name: row for row in KeyFingerprint.objects.filter(name__in=mine)}
    missing = [name for name in mine if name not in recorded]
    if missing:
        now, me = timezone.now(), node_name()
        # INSERT ... ON CONFLICT DO NOTHING (INSERT OR IGNORE on SQLite): a node recording at the same
        # time wins or loses quietly; what is read back is the cluster's.
        KeyFingerprint.objects.bulk_create(
            [KeyFingerprint(name=name, fingerprint=mine[name].current, recorded_at=now, recorded_by=me)
             for name in missing], ignore_conflicts=True)
        recorded.update({row.name: row for row in KeyFingerprint.objects.filter(name__in=missing)})
        for name in missing:
            row = recorded.get(name)
            if row is not None and row.fingerprint == mine[name].current and row.recorded_by == me:
                logger.info("recorded this node's %s as the cluster's (%s)", name, row.fingerprint[:24])
    mismatches = []
    for name, fingerprint in mine.items():
        row = recorded.get(name)
        if row is None or row.fingerprint == fingerprint.current:
            continue  # None: forgotten meanwhile; the next check records it
        if row.fingerprint in fingerprint.previous and _move_forward(name, row.fingerprint, fingerprint.current):
            continue
        mismatches.append(Mismatch(name, row.recorded_at, row.recorded_by))
    return mismatches


def _move_forward(name: str, old: str, new: str) -> bool:
    """This node retired the recorded key for a new one: the new one becomes the cluster's."""
    moved = KeyFingerprint.objects.filter(name=name, fingerprint=old).update(
        fingerprint=new, recorded_at=timezone.now(), recorded_by=node_name())
    if moved:
        logger.warning("the cluster's %s is now this node's new key (the recorded one is among its retired "
                       "keys): nodes still on the old key are reported until they get the new one", name)
        return True
    return KeyFingerprint.objects.filter(name=name, fingerprint=new).exists()  # another node moved it first


def describe(mismatches: list[Mismatch]) -> str:
    names = [mismatch.name for mismatch in mismatches]
    which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "differs" if len(names) == 1 else "differ"
    def when(m: Mismatch) -> str:
        return f"first recorded at {m.recorded_at:%Y-%m-%d %H:%M:%S} UTC by {m.recorded_by}"

    if len({(m.recorded_at, m.recorded_by) for m in mismatches}) == 1:
        recorded = when(mismatches[0])
    else:
        recorded = "; ".join(f"{m.name} {when(m)}" for m in mismatches)
    sources = "; ".join(SOURCES[name] for name in names)
    return (f"this node's {which} {verb} from the cluster's ({recorded}); copy keys/ from a running node "
            f"or set SECRET_KEY/HUB_ENCRYPTION_KEY the same on every node ({sources})")


_verdict: tuple[tuple, float, tuple[Mismatch, ...]] | None = None


def check() -> None:
    """The readiness check: raise KeysDiffer when this node's keys are not the cluster's. The verdict
    is reused for RECHECK_SECONDS (a mismatch keeps being reported meanwhile)."""
    global _verdict
    mine = node_fingerprints()
    key = tuple(sorted((name, fingerprint.current) for name, fingerprint in mine.items()))
    previous = _verdict
    if previous is not None and previous[0] == key and time.monotonic() - previous[1] < RECHECK_SECONDS:
        mismatches = previous[2]
    else:
        mismatches = tuple(compare(mine))
        _verdict = (key, time.monotonic(), mismatches)
        was = previous[2] if previous is not None else ()
        if mismatches and mismatches != was:
            logger.error("%s. If every node's key was replaced on purpose, forget the old one: manage.py shell "
                         "-c \"from hub.keycheck import forget; forget()\"", describe(list(mismatches)))
        elif was and not mismatches:
            logger.warning("this node's keys are the cluster's again")
    if mismatches:
        raise KeysDiffer(describe(list(mismatches)))


def forget(*names: str) -> int:
    """Forget the recorded fingerprints (all, or those named): the next node to check records its own."""
    global _verdict
    rows = KeyFingerprint.objects.all()
    if names:
        rows = rows.filter(name__in=names)
    _verdict = None
    return rows.delete()[0]


def reset_process_cache() -> None:
    """Drop what this process remembers (tests; settings changed)."""
    global _verdict
    _verdict = None
    _node_cache.clear()
