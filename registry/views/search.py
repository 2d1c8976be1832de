"""`docker search` / `podman search`: /v1/_ping and /v1/search (REFERENCE.md §3)."""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from registry.access import authenticate_request
from registry.errors import RegistryError
from repositories.permissions import Actor
from repositories.search import search_repositories


@require_GET
def ping(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({})
    response["X-Docker-Registry-Standalone"] = "true"
    response["X-Docker-Registry-Version"] = "0.6.0"
    return response


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    actor = Actor()
    if request.META.get("HTTP_AUTHORIZATION"):
        try:
            access = authenticate_request(request)
        except RegistryError as error:
            return error.response()
        actor = access.visibility_actor()
    query = request.GET.get("q", "").strip()[:255]
    page_size = _int(request.GET.get("n"), 25, 1, 100)
    page = _int(request.GET.get("page"), 1, 1, 10_000)
    repositories, total = search_repositories(actor=actor, query=query, offset=(page - 1) * page_size,
                                              limit=page_size)
    return JsonResponse({
        "query": query,
        "num_results": total,
        "num_pages": max(1, math.ceil(total / page_size)),
        "page": page,
        "page_size": page_size,
        "results": [
            {
                "name": repository.display_name,
                "description": repository.description,
                "star_count": repository.star_count,
                "pull_count": repository.pull_count,
                "is_official": repository.is_official,
                "is_automated": repository.is_automated,
                "is_trusted": repository.is_automated,
            }
            for repository in repositories
        ],
    })
