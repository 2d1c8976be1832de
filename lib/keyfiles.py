"""Private key files created on first use, atomically, whichever process gets there first.

`create_exclusively` writes the bytes to a private O_EXCL temporary file, then hard-links it into
place: the link fails if another process won (theirs is kept), and nobody reads a half-written file.
`load_or_create_p256_key` is the load-or-make of an ECDSA P-256 PEM key on top of it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def create_exclusively(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` holding `data` unless it exists; True when this call created it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: create the file itself with O_EXCL
            return _create_in_place(path, data, mode)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _create_in_place(path: Path, data: bytes, mode: int) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        time.sleep(0.2)  # let the winner finish writing
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def load_or_create_p256_key(path: Path, *, purpose: str = "signing key") -> ec.EllipticCurvePrivateKey:
    """The ECDSA P-256 private key in `path` (PEM), made first (0600, its folder 0700) when missing."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        if create_exclusively(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())):
            logger.info("created the %s %s", purpose, path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ImproperlyConfigured(f"{path} must hold an EC P-256 private key")
    return key
