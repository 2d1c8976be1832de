"""Content digests (`algorithm:hex`) as the OCI image spec defines them, and their storage paths."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Only the registered algorithms, with their exact lengths and lowercase hex (OCI image-spec
# descriptor.md "Registered algorithms"). Anything else is refused rather than stored.
ALGORITHM_HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha512": 128}

DIGEST_PATTERN = r"(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"
DIGEST_RE = re.compile(rf"^{DIGEST_PATTERN}$")


class InvalidDigest(ValueError):
    """The string is not a digest this registry accepts."""


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: object) -> Digest:
    """Parse `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`; raise InvalidDigest otherwise."""
    if not isinstance(value, str):
        raise InvalidDigest(f"a digest must be a string, not {type(value).__name__}")
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    if not DIGEST_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        algorithm = value.partition(":")[0]
        if ":" not in value:
            raise InvalidDigest(f"invalid digest {shown!r}: expected <algorithm>:<hex>")
        if algorithm not in ALGORITHM_HEX_LENGTHS:
            raise InvalidDigest(f"invalid digest {shown!r}: unsupported algorithm {algorithm[:20]!r} "
                                "(use sha256 or sha512)")
        raise InvalidDigest(f"invalid digest {shown!r}: {algorithm} needs "
                            f"{ALGORITHM_HEX_LENGTHS[algorithm]} lowercase hex characters")
    algorithm, _, hex_part = value.partition(":")
    return Digest(algorithm=algorithm, hex=hex_part)


def is_valid_digest(value: object) -> bool:
    return isinstance(value, str) and DIGEST_RE.fullmatch(value) is not None


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_path(digest: str | Digest) -> str:
    """Where a blob lives inside the blob storage: `sha256/ab/abcdef…` (two-character fan-out)."""
    parsed = digest if isinstance(digest, Digest) else parse_digest(digest)
    return f"{parsed.algorithm}/{parsed.hex[:2]}/{parsed.hex}"
