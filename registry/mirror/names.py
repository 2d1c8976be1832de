"""Mirrored names: `<prefix>/<upstream name>` for each prefix of HUB_MIRRORS (README, "Pull-through cache").

A mirrored repository is a Repository of the prefix's reserved namespace whose `name` is the whole
upstream name (`library/alpine`, `org/team/tool`: any number of components). Everything that turns
a client's name into (namespace, name) — the registry views, the token service, the claims of a
token — asks `split_name`, so a token names canonical repositories wherever it was issued.

The test is one dictionary lookup on the first component, so names of other namespaces pay nothing.
"""

from __future__ import annotations

from django.conf import settings

from oci.names import COMPONENT_RE, MAX_NAME_LENGTH, InvalidName, normalize_repository_name

DOCKER_HUB_DISPLAY = "docker.io"


def mirror_prefix(raw: str) -> str | None:
    """The mirror prefix `raw` starts with (`dockerhub/…`), or None: the cheap test of the hot path."""
    prefix, slash, _ = raw.partition("/")
    if slash and prefix in settings.HUB_MIRRORS:
        return prefix
    return None


def split_mirror_name(raw: str) -> tuple[str, str] | None:
    """(prefix, upstream name) for a mirrored name, None for any other; InvalidName for a bad one.

    Docker Hub's official images have the implied `library/`: `dockerhub/alpine` is
    `dockerhub/library/alpine`, so both spellings are one repository.
    """
    prefix = mirror_prefix(raw) if isinstance(raw, str) else None
    if prefix is None:
        return None
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidName(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    upstream = raw[len(prefix) + 1:]
    components = upstream.split("/")
    for component in components:
        if not COMPONENT_RE.fullmatch(component):
            raise InvalidName(
                f"invalid repository name {raw!r}: each part uses lowercase letters, digits and "
                "single separators (., _, __ or -) and starts and ends with a letter or digit"
            )
    if len(components) == 1 and settings.HUB_MIRRORS[prefix].display == DOCKER_HUB_DISPLAY:
        upstream = f"library/{upstream}"
    return prefix, upstream


def split_name(raw: object) -> tuple[str, str]:
    """(namespace, name) of any repository name a client writes, mirrored ones included."""
    if isinstance(raw, str):
        mirrored = split_mirror_name(raw)
        if mirrored is not None:
            return mirrored
    return normalize_repository_name(raw)


def is_mirror_namespace(namespace: str) -> bool:
    return namespace in settings.HUB_MIRRORS
