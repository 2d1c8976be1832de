import time

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from accounts.services import user_organizations
from hub.health import run_checks
from hub.metrics import WEB_COLLECTORS
from lib import metrics as prometheus
from registry import selectors as registry_selectors
from repositories import selectors


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, storage, cache and broker reachable: ready for traffic."""
    checks = run_checks()
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this node (its gunicorn workers together), for a bearer of HUB_METRICS_TOKEN
    (never taken from the query string). Without a token configured, a 404 like any unknown path."""
    if not settings.HUB_METRICS_TOKEN:
        raise Http404
    if not prometheus.authorized(request.headers.get("Authorization"), settings.HUB_METRICS_TOKEN):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    return HttpResponse(prometheus.exposition(WEB_COLLECTORS), content_type=prometheus.CONTENT_TYPE)


DASHBOARD_PAGE_SIZE = 20


STATUS_NAMES = {"database": "Database", "storage": "Image storage", "cache": "Cache", "broker": "Task queue",
                "keys": "Signing and encryption keys"}
STATUS_FRESH_SECONDS = 10
_status_seen: tuple[float, dict[str, str]] | None = None


@never_cache
def status(request: HttpRequest) -> HttpResponse:
    """The readiness checks as a page for people (the footer's Status link): each part up or down, without the
    operator's error text (that is /readyz's, for probes). Checked at most every few seconds per process: each
    check writes to storage, and this page is public."""
    global _status_seen
    now = time.monotonic()
    if _status_seen is None or now - _status_seen[0] > STATUS_FRESH_SECONDS:
        _status_seen = (now, run_checks())
    checks = [(STATUS_NAMES.get(name, name), result == "ok") for name, result in _status_seen[1].items()]
    ready = all(ok for _, ok in checks)
    return render(request, "hub/status.html", {"checks": checks, "ready": ready}, status=200 if ready else 503)


def home(request: HttpRequest) -> HttpResponse:
    """Signed out: what the site is, official images, most pulled. Signed in: the dashboard."""
    context: dict = {}
    if not request.user.is_authenticated:
        sections = selectors.explore_sections(limit=6)
        context.update(official=sections["official"], most_pulled=sections["most_pulled"])
        return render(request, "hub/home.html", context)
    namespaces = selectors.user_namespaces(request.user)
    filters = {key: request.GET.get(key, "") for key in ("namespace", "visibility", "sort")}
    filters["sort"] = filters["sort"] if filters["sort"] in selectors.DASHBOARD_SORTS else "pushed"
    repositories = selectors.dashboard_repositories(request.user, namespaces, **filters)
    page = Paginator(repositories, DASHBOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        organizations=user_organizations(user=request.user),
        namespaces=namespaces, filters=filters, page=page, filtered=bool(filters["namespace"] or filters["visibility"]),
        query_string=urlencode({k: v for k, v in filters.items() if v}),
        starred=selectors.starred_repositories(request.user),
        activity=registry_selectors.recent_activity(request.user, namespaces),
    )
    return render(request, "hub/home.html", context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", {}, status=500)
