"""The mirror settings, parsed: HUB_MIRRORS, HUB_MIRROR_HOSTS and HUB_MIRROR_READERS.

Each parser takes the raw setting and raises ValueError naming the bad entry (never echoing a
password); settings turn that into ImproperlyConfigured. No Django settings are read here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from accounts.names import NAMESPACE_RE, RESERVED_NAMESPACES

DOCKER_HUB_HOSTS = frozenset({"registry-1.docker.io", "registry.docker.io", "index.docker.io", "docker.io"})
_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


@dataclass(frozen=True)
class Mirror:
    prefix: str  # "dockerhub"
    url: str  # "https://registry-1.docker.io" (no credentials, no trailing slash)
    username: str | None = None  # from user:password@ in HUB_MIRRORS, percent-decoded
    password: str | None = field(default=None, repr=False)  # never in repr, logs or errors

    @property
    def display(self) -> str:
        """How people name the upstream: "docker.io" for Docker Hub, else the URL's host[:port]."""
        netloc = urlsplit(self.url).netloc
        if (urlsplit(self.url).hostname or "") in DOCKER_HUB_HOSTS:
            return "docker.io"
        return netloc

    @property
    def has_credentials(self) -> bool:
        return self.username is not None


def _entries(value: str) -> list[tuple[str, str, str]]:
    """`a=x,b=y` → [("a", "x", "a=…"), …]; empty entries are skipped."""
    found = []
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, rest = entry.partition("=")
        shown = f"{key.strip()}=…" if sep else entry.split("@")[-1]
        if not sep or not key.strip() or not rest.strip():
            raise ValueError(f"mirror entry {shown!r}: expected name=value")
        found.append((key.strip(), rest.strip(), shown))
    return found


def _check_prefix(prefix: str, setting: str) -> None:
    if not NAMESPACE_RE.match(prefix):
        raise ValueError(f"{setting}: mirror prefix {prefix!r} must be 4–30 lowercase letters or digits "
                         "(a namespace name)")
    if prefix in RESERVED_NAMESPACES:
        raise ValueError(f"{setting}: mirror prefix {prefix!r} is a reserved word; choose another")


def parse_mirrors(value: str) -> dict[str, Mirror]:
    """HUB_MIRRORS: `dockerhub=https://registry-1.docker.io,ghcr=https://user:token@ghcr.io`."""
    mirrors: dict[str, Mirror] = {}
    for prefix, url, _shown in _entries(value):
        _check_prefix(prefix, "HUB_MIRRORS")
        if prefix in mirrors:
            raise ValueError(f"HUB_MIRRORS: mirror prefix {prefix!r} appears twice")
        mirrors[prefix] = _parse_url(prefix, url)
    return mirrors


def _parse_url(prefix: str, url: str) -> Mirror:
    bad = f"HUB_MIRRORS: the URL of mirror {prefix!r}"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError(f"{bad} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{bad} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{bad} must start with https:// (or http://)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{bad} must be the registry's root (scheme://host[:port]), without a path")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError(f"{bad} has no host")
    if ":" in host:
        shown_host = f"[{host}]"
    elif _HOST_RE.fullmatch(host):
        shown_host = host
    else:
        raise ValueError(f"{bad} has an invalid host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{bad} has a port out of range")
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    username = password = None
    if "@" in parts.netloc:
        if parts.username is None or parts.password is None or not parts.username:
            raise ValueError(f"{bad}: credentials must be written user:password@")
        username, password = unquote(parts.username), unquote(parts.password)
        if not password:
            raise ValueError(f"{bad}: the password is empty")
    return Mirror(prefix=prefix, url=f"{parts.scheme}://{netloc}", username=username, password=password)


def parse_mirror_hosts(value: str) -> dict[str, str]:
    """HUB_MIRROR_HOSTS: `mirror.example.com=dockerhub` → {"mirror.example.com": "dockerhub"}.

    Host names are lowercased and any port dropped (Host matching ignores the port). Whether each
    prefix is a configured mirror is for the caller to check against parse_mirrors.
    """
    hosts: dict[str, str] = {}
    for host, prefix, _shown in _entries(value):
        name = host.lower().rstrip(".")
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name, _, port = name.partition(":")
            if not port.isdigit():
                raise ValueError(f"HUB_MIRROR_HOSTS: {host!r} has an invalid port")
        if not name or not (_HOST_RE.fullmatch(name) or _is_ip(name)):
            raise ValueError(f"HUB_MIRROR_HOSTS: {host!r} is not a host name")
        _check_prefix(prefix, "HUB_MIRROR_HOSTS")
        if name in hosts:
            raise ValueError(f"HUB_MIRROR_HOSTS: host {name!r} appears twice")
        hosts[name] = prefix
    return hosts


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_mirror_readers(value: str) -> dict[str, tuple[str, ...]]:
    """HUB_MIRROR_READERS: `dockerhub=acme,opsteam;ghcr=tools` → {"dockerhub": ("acme", "opsteam"), "ghcr": ("tools",)}.

    Entries are `prefix=org`; organizations after a prefix's first are listed on (comma separated
    names that hold no `=` belong to the prefix before them). `;` may also separate prefixes.
    """
    readers: dict[str, list[str]] = {}
    current: str | None = None
    for raw in (value or "").replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" in item:
            prefix, _, org = (part.strip() for part in item.partition("="))
            _check_prefix(prefix, "HUB_MIRROR_READERS")
            if prefix in readers:
                raise ValueError(f"HUB_MIRROR_READERS: mirror prefix {prefix!r} appears twice")
            readers[prefix] = []
            current = prefix
        else:
            if current is None:
                raise ValueError(f"HUB_MIRROR_READERS: {item!r} has no mirror prefix (expected prefix=org,org)")
            org = item
        if not NAMESPACE_RE.match(org):
            raise ValueError(f"HUB_MIRROR_READERS: {org!r} is not an organization name "
                             "(4–30 lowercase letters or digits)")
        if org not in readers[current]:
            readers[current].append(org)
    return {prefix: tuple(orgs) for prefix, orgs in readers.items()}
