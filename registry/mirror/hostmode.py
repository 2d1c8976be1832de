"""Host mode: a Host of HUB_MIRROR_HOSTS serves one mirror under the upstream's own names.

dockerd's `registry-mirrors` asks the mirror for `/v2/library/alpine/...`; on such a host that is
`/v2/<prefix>/library/alpine/...` inside Wharf. The host serves `/v2/` and `/token` only (404
elsewhere). Tokens always name canonical repositories (`<prefix>/library/alpine`), so a token
obtained through the mirror host grants nothing on the main host's `library/alpine`: `/token` on
the mirror host reads the scopes' names as the upstream's, and challenges sent back point at the
mirror host's `/token` with the names the client used.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from oci.scopes import REPOSITORY, Scope

ATTRIBUTE = "wharf_mirror_prefix"
_SCOPE_RE = re.compile(r'scope="([^"]*)"')
_REALM_RE = re.compile(r'realm="[^"]*"')


def request_host(request: HttpRequest) -> str:
    """The Host header's name, lowercased, without its port (not validated: only compared)."""
    host = request.META.get("HTTP_HOST", "").strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name.rstrip(".")  # after the port: `mirror.example.com.:5000` is the mirror host too


def host_prefix(request: HttpRequest) -> str | None:
    """The mirror prefix a request came for through its mirror host, or None."""
    return getattr(request, ATTRIBUTE, None)


def canonical_scopes(request: HttpRequest, scopes: list[Scope]) -> list[Scope]:
    """Scopes asked through a mirror host name the upstream's repositories: make them canonical."""
    prefix = host_prefix(request)
    if prefix is None:
        return scopes
    return [Scope(type=s.type, name=f"{prefix}/{s.name}", actions=s.actions) if s.type == REPOSITORY else s
            for s in scopes]


class MirrorHostMiddleware:
    """Maps a mirror host's /v2/ paths to the prefix's names; 404 for anything but /v2/ and /token."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.HUB_MIRROR_HOSTS:
            raise MiddlewareNotUsed  # nothing at all on any request
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        prefix = settings.HUB_MIRROR_HOSTS.get(request_host(request))
        if prefix is None:
            return self.get_response(request)
        path = request.path_info
        if path == "/token":
            setattr(request, ATTRIBUTE, prefix)
            return self.get_response(request)
        if path == "/v2/" or path == "/v2":
            response = self.get_response(request)
            return self._client_names(request, response, prefix)
        if not path.startswith("/v2/") or path.startswith("/v2/_catalog"):
            return HttpResponseNotFound(b"not found", content_type="text/plain")
        setattr(request, ATTRIBUTE, prefix)
        request.path_info = f"/v2/{prefix}/{path[4:]}"
        request.path = request.path_info
        response = self.get_response(request)
        return self._client_names(request, response, prefix)

    def _client_names(self, request: HttpRequest, response: HttpResponse, prefix: str) -> HttpResponse:
        """Challenges in the client's terms: this host's /token, the names it asked for."""
        challenge = response.get("WWW-Authenticate")
        if challenge and challenge.lower().startswith("bearer"):
            scheme = "https" if settings.HUB_PUBLIC_URL.startswith("https:") else request.scheme
            host = request.META.get("HTTP_HOST", "")
            port = host.rpartition(":")[2] if not host.endswith("]") and ":" in host else ""
            name = request_host(request)
            authority = (f"[{name}]" if ":" in name else name) + (f":{port}" if port.isdigit() else "")
            realm = f'realm="{scheme}://{authority}/token"'
            challenge = _REALM_RE.sub(lambda _m: realm, challenge, count=1)
            response["WWW-Authenticate"] = _SCOPE_RE.sub(lambda m: f'scope="{_strip(m.group(1), prefix)}"', challenge)
        return response


def _strip(scope: str, prefix: str) -> str:
    type_, sep, rest = scope.partition(":")
    if type_ == REPOSITORY and rest.startswith(f"{prefix}/"):
        return f"{type_}{sep}{rest[len(prefix) + 1:]}"
    return scope
