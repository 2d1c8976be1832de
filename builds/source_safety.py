"""Server-side request forgery checks for remote Git sources and the registries a build pulls from
(no Django here).

Before `git fetch`, the source's host is resolved once (`lib.outbound.addresses`) and every
candidate address goes through the outbound client's check (`lib.outbound.address_refusal`:
loopback, private, link-local, multicast, reserved and other non-global addresses are refused unless
an allowed network holds them). git is then pinned to the checked address (`http.curloptResolve` for
http(s), `HostName` for ssh), so a second DNS answer cannot send it elsewhere; redirects are off
(`http.followRedirects=false`).
Local paths are not handled here: `HUB_BUILD_LOCAL_ROOTS` governs them.

Base images (`check_pull_registry`): an image on the hub itself (its internal registry or its public
host) is pulled from the hub; any other registry must resolve to public addresses only, or the build
is refused before anything connects. That check gives the clear refusal; what holds is the pull
step's network, filtered to public addresses like RUN steps' (a second DNS answer, a redirect, a
token realm or a layer URL pointing inside is refused there too).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lib.outbound import DeliveryFailed, Network, Target, address_refusal, addresses, parse_networks

__all__ = ["PinnedHost", "SourceRefused", "check_pull_registry", "check_remote_source", "image_registry",
           "parse_networks", "remote_host"]

SCP_LIKE_RE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]]+\]|[^:/\s\[\]]+):(?!//)")
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22}
DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"  # where containers/image pulls docker.io images from


class SourceRefused(Exception):
    """The source's host is not allowed (or cannot be resolved): nothing was fetched."""


@dataclass(frozen=True)
class PinnedHost:
    scheme: str  # http, https or ssh
    host: str  # the name in the URL (IDNA), without brackets
    port: int
    address: str  # the checked address git must connect to


def remote_host(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s), ssh:// or scp-like (`git@host:path`) Git URL."""
    match = None if "://" in url else SCP_LIKE_RE.match(url)
    if match:
        scheme, host, port = "ssh", match.group("host").strip("[]"), 22
    else:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise SourceRefused(f"the source URL is not valid: {error}") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise SourceRefused(f"{scheme or 'this'} URLs are not fetched: use https://, http:// or ssh://")
        host = parts.hostname or ""
        port = port or DEFAULT_PORTS[scheme]
    host = host.rstrip(".")
    if not host:
        raise SourceRefused("the source URL has no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise SourceRefused("the source's host name is not valid") from None
    return scheme, host, port


def check_remote_source(url: str, allowed: Iterable[Network] = ()) -> PinnedHost:
    """Resolve the source's host once; the first allowed address, or SourceRefused saying why."""
    scheme, host, port = remote_host(url)
    allowed = list(allowed)
    candidates = _resolve(host, port)
    reasons = []
    for address in candidates:
        reason = address_refusal(address, allowed)
        if reason is None:
            plain = address.ipv4_mapped if getattr(address, "ipv4_mapped", None) else address
            return PinnedHost(scheme=scheme, host=host, port=port, address=str(plain))
        reasons.append(reason)
    raise SourceRefused(f"refused to fetch from {host}: {reasons[0]} (HUB_BUILD_ALLOWED_NETWORKS can allow it)")


def _resolve(host: str, port: int) -> list:
    """The outbound client's resolution (an IP literal, or every address of the name's one DNS answer)."""
    try:
        return addresses(Target(scheme="", host=host, port=port, path="", host_header=host))
    except DeliveryFailed as error:
        raise SourceRefused(str(error)) from None


def git_pin_options(pinned: PinnedHost) -> list[str]:
    """`git -c` options that make an http(s) fetch connect to the checked address only."""
    if pinned.scheme not in ("http", "https"):
        return []
    address = f"[{pinned.address}]" if ":" in pinned.address else pinned.address
    return ["-c", f"http.curloptResolve={pinned.host}:{pinned.port}:{address}"]


def ssh_pin_options(pinned: PinnedHost) -> str:
    """ssh options (shell-quoted, for GIT_SSH_COMMAND) that connect to the checked address, keeping the
    name known_hosts lists the host under: `host`, or `[host]:port` off port 22, as ssh itself would."""
    if pinned.scheme != "ssh":
        return ""
    alias = pinned.host if pinned.port == DEFAULT_PORTS["ssh"] else f"[{pinned.host}]:{pinned.port}"
    return shlex.join(["-o", f"HostName={pinned.address}", "-o", f"HostKeyAlias={alias}", "-o", "CheckHostIP=no"])


# --- registries of base images --------------------------------------------------------------------------------


def image_registry(reference: str) -> str:
    """The registry (`host[:port]`, lowercase) an image reference is pulled from, as containers/image reads
    it: the first component when it holds a '.' or ':', is `localhost` (or has capitals), else Docker Hub."""
    first, slash, _rest = reference.split("@", 1)[0].partition("/")
    if slash and (any(mark in first for mark in ".:[") or first == "localhost" or first != first.lower()):
        return first.lower()
    return DOCKER_HUB


def _registry_host(registry: str) -> tuple[str, int]:
    host, port = registry, 443
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else port
    elif registry.count(":") == 1:
        host, _, raw = registry.partition(":")
        port = int(raw) if raw.isdigit() else port
    return (DOCKER_HUB_ENDPOINT if host == DOCKER_HUB else host.rstrip(".")), port


def check_pull_registry(reference: str, *, hub_registries: Iterable[str]) -> bool:
    """Whether the image is the hub's own (True: pulled from the hub); False for a registry whose every
    address is public; SourceRefused, naming the registry, for any other (nothing has connected to it)."""
    registry = image_registry(reference)
    if registry in {hub.lower() for hub in hub_registries}:
        return True
    host, port = _registry_host(registry)
    if not host:
        raise SourceRefused(f"refused to pull {reference}: no registry host")
    try:
        candidates = _resolve(host, port)
    except SourceRefused as error:
        raise SourceRefused(f"refused to pull {reference} from {registry}: {error}") from None
    for address in candidates:
        reason = address_refusal(address, ())
        if reason is not None:
            raise SourceRefused(f"refused to pull {reference} from {registry}: {reason} "
                                f"(base images come from this hub or from public registries)")
    return False
