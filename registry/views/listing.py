"""/v2/ itself, tags list, catalog and referrers: the read-only listing endpoints."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse

from oci import mediatypes
from oci.digests import is_valid_digest
from registry.access import challenge
from registry.errors import DigestInvalid, NameUnknown, PaginationNumberInvalid, Unauthorized
from registry.models import Tag
from registry.services.manifests import referrers
from registry.views.base import RegistryView

MAX_PAGE = 1000


def page_size(request: HttpRequest) -> int | None:
    raw = request.GET.get("n")
    if raw is None or raw == "":
        return None
    try:
        n = int(raw)
    except ValueError:
        raise PaginationNumberInvalid(detail={"n": raw[:20]}) from None
    if n < 0:
        raise PaginationNumberInvalid(detail={"n": raw[:20]})
    return min(n, MAX_PAGE)


def paginated(request: HttpRequest, names: list[str], n: int | None, path: str, key: str, extra: dict) -> JsonResponse:
    has_more = False
    if n is not None and len(names) > n:
        names, has_more = names[:n], True
    response = JsonResponse({**extra, key: names})
    if has_more and names:
        response["Link"] = f'<{path}?{urlencode({"last": names[-1], "n": n})}>; rel="next"'
    return response


class BaseView(RegistryView):
    """GET /v2/: 200 when the caller authenticated (anonymous tokens count), else a challenge."""

    repository_scoped = False
    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        response = JsonResponse({})
        return response

    def head(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"", content_type="application/json")


class TagsListView(RegistryView):
    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        n = page_size(request)
        tags = Tag.objects.filter(repository=self.repository).order_by("name").values_list("name", flat=True)
        last = request.GET.get("last")
        if last:
            tags = tags.filter(name__gt=last)
        if n == 0:
            names: list[str] = []
        else:
            names = list(tags[: n + 1] if n is not None else tags)
        return paginated(request, names, n, f"/v2/{self.url_name()}/tags/list", "tags", {"name": self.url_name()})


class CatalogView(RegistryView):
    repository_scoped = False
    http_method_names = ["get"]

    def scope_for(self, request: HttpRequest) -> str | None:
        return "registry:catalog:*"

    def get(self, request: HttpRequest) -> HttpResponse:
        from django.db.models import F, Value
        from django.db.models.functions import Concat

        from repositories.selectors import repositories_visible_to

        if not self.access.may_list_catalog():
            raise Unauthorized("insufficient scope", headers={
                "WWW-Authenticate": challenge("registry:catalog:*", "insufficient_scope")})
        n = page_size(request)
        visible = (
            repositories_visible_to(self.access.visibility_actor())
            .annotate(full=Concat(F("namespace__name"), Value("/"), F("name")))
            .order_by("full")
            .values_list("full", flat=True)
        )
        last = request.GET.get("last")
        if last:
            visible = visible.filter(full__gt=last if "/" in last else f"library/{last}")
        if n == 0:
            names: list[str] = []
        else:
            names = list(visible[: n + 1] if n is not None else visible[:100_000])
        return paginated(request, names, n, "/v2/_catalog", "repositories", {})


class ReferrersView(RegistryView):
    http_method_names = ["get"]

    def get(self, request: HttpRequest, digest: str) -> HttpResponse:
        if not is_valid_digest(digest):
            raise DigestInvalid(detail={"digest": digest[:200]})
        artifact_type = request.GET.get("artifactType") or None
        index = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": referrers(repository=self.repository, digest=digest, artifact_type=artifact_type),
        }
        response = HttpResponse(json.dumps(index), content_type=mediatypes.OCI_INDEX)
        if artifact_type:
            response["OCI-Filters-Applied"] = "artifactType"
        return response


class UnknownRegistryPath(RegistryView):
    """Anything else under /v2/ that is not the Hub API: a JSON 404 in the registry's format."""

    repository_scoped = False
    http_method_names = ["get", "head", "post", "put", "patch", "delete"]

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        error = NameUnknown("no such registry endpoint", detail={"path": request.path[:300]})
        response = error.response(head=request.method == "HEAD")
        response["Docker-Distribution-API-Version"] = "registry/2.0"
        return response
