from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.services import user_organizations
from hub.health import run_checks


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


def home(request: HttpRequest) -> HttpResponse:
    """Signed out: what the site is. Signed in: the dashboard."""
    context: dict = {}
    if request.user.is_authenticated:
        context["organizations"] = user_organizations(user=request.user)
    return render(request, "hub/home.html", context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", {}, status=500)
