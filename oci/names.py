"""Repository names and tags as the OCI distribution spec defines them, plus Docker Hub's rules.

Docker Hub names have at most two path components: `ubuntu` is `library/ubuntu`, `alice/app`
is itself, and anything deeper is refused.
"""

from __future__ import annotations

import re

LIBRARY = "library"
MAX_NAME_LENGTH = 255  # of `namespace/name`, as clients write it

COMPONENT_PATTERN = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
COMPONENT_RE = re.compile(COMPONENT_PATTERN)
# A whole repository name as it appears in a URL (one or more components); the URL converter
# uses it, and normalize_repository_name then applies the two-component rule.
NAME_PATTERN = rf"{COMPONENT_PATTERN}(?:/{COMPONENT_PATTERN})*"

TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
TAG_RE = re.compile(TAG_PATTERN)

# cosign and friends store signatures, attestations and SBOMs under `sha256-<hex>.<suffix>`.
ATTACHMENT_TAG_RE = re.compile(r"sha256-[a-f0-9]{64}(?:\.[a-zA-Z0-9_-][a-zA-Z0-9._-]*)?")


class InvalidName(ValueError):
    """The repository name is not one this registry serves."""


def normalize_repository_name(name: object) -> tuple[str, str]:
    """Split a client's repository name into (namespace, repository).

    `ubuntu` → ("library", "ubuntu"); `alice/app` → ("alice", "app"). Empty names, names with
    three or more components and components that break the spec's grammar raise InvalidName.
    """
    if not isinstance(name, str) or not name:
        raise InvalidName("repository name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    components = name.split("/")
    if len(components) > 2:
        raise InvalidName(f"invalid repository name {name!r}: use <name> or <namespace>/<name>")
    for component in components:
        if not COMPONENT_RE.fullmatch(component):
            raise InvalidName(
                f"invalid repository name {name!r}: each part uses lowercase letters, digits and "
                "single separators (., _, __ or -) and starts and ends with a letter or digit"
            )
    if len(components) == 1:
        return LIBRARY, components[0]
    return components[0], components[1]


def is_valid_repository_name(name: object) -> bool:
    try:
        normalize_repository_name(name)
    except InvalidName:
        return False
    return True


def display_name(namespace: str, name: str) -> str:
    """The name people type: `ubuntu` for official images, `alice/app` otherwise."""
    return name if namespace == LIBRARY else f"{namespace}/{name}"


def full_name(namespace: str, name: str) -> str:
    """`namespace/name`, official images included (`library/ubuntu`)."""
    return f"{namespace}/{name}"


def is_valid_tag(tag: object) -> bool:
    return isinstance(tag, str) and TAG_RE.fullmatch(tag) is not None


def is_attachment_tag(tag: object) -> bool:
    """True for cosign-style attachment tags: `sha256-<64 hex>` with an optional `.sig`, `.att`, …"""
    return is_valid_tag(tag) and ATTACHMENT_TAG_RE.fullmatch(tag) is not None  # type: ignore[arg-type]
