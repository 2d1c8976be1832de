"""Middleware of every request: metrics, and a lean path for the registry.

/v2/ registry routes and /token skip the site's middleware: sessions, CSRF, messages, allauth and htmx
have nothing to do with the registry protocol, and the manifest GET path is hot. Hub API routes under
/v2/ are not in registry.urls and take the normal path.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

from accounts.audit import audit_context
from lib.metrics import HTTP


class MetricsMiddleware:
    """Counts every request by its URL pattern (never its path), method and status, and times it
    (lib/metrics.py). First in MIDDLEWARE, so the registry's fast path is counted too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.recorder = HTTP
        HTTP.static_prefix = settings.STATIC_URL

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        if match is None:
            self.recorder.record(None, None, request.path_info, request.method, response.status_code,
                                 perf_counter() - started)
        else:
            self.recorder.record(match.route, match.url_name, "", request.method, response.status_code,
                                 perf_counter() - started)
        return response


class RegistryFastPathMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver("registry.urls")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if not (path.startswith("/v2/") or path == "/token" or path.startswith("/v1/")):
            return self.get_response(request)
        try:
            match = self.resolver.resolve(path)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


class OperationsPathsMiddleware:
    """/healthz, /readyz and /metrics answer whatever the Host header says.

    Load balancers, kubelet and Prometheus reach a node by its address (or send no Host at all), which
    Django's host validation refuses with a 400 once HUB_PUBLIC_URL names a real host: every node would
    look down. These three paths read nothing from the request's host, so they are answered here,
    before any middleware that validates it. /metrics keeps its bearer token.
    """

    PATHS = {"/healthz", "/readyz", "/metrics"}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in self.PATHS:
            return self.get_response(request)
        match = self.resolver.resolve(request.path_info)
        request.resolver_match = match
        return match.func(request, *match.args, **match.kwargs)


class AuditContextMiddleware:
    """Who is acting and from where, for the audit events the request's services record
    (accounts/audit.py). Before the registry's fast path, so pushes have it too. Only the request is
    kept: its user and address are read when an event is written, so a GET pays nothing more."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with audit_context(request):
            return self.get_response(request)
