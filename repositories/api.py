"""Hub JSON API for repositories: list/create/detail, tags, stars, stats and search (Docker Hub shapes).

Every lookup starts from `repositories_visible_to(actor)`: what the caller may not pull does not
exist for them (404, the same body as for a missing repository). What they can see but not change
is 403; changing anything without credentials is 401.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db.models import BigIntegerField, BooleanField, F, IntegerField, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from accounts.models import Namespace, User
from hub.api import HubPagination, request_actor, service_errors_on
from lib.sql import RowSQL, column, table
from oci.names import COMPONENT_PATTERN, TAG_PATTERN
from registry import selectors as registry_selectors
from registry.errors import TagImmutable
from registry.models import RepositoryBlob, Tag
from registry.services.manifests import tag_delete
from repositories import serializers as s
from repositories.models import Collaborator, PullStat, Repository, Star
from repositories.permissions import (
    ADMIN,
    DELETE,
    PULL,
    may_create_repository,
    repository_actions,
    repository_actions_many,
)
from repositories.search import CappedCountPaginator, CountCap, search_queryset
from repositories.selectors import repositories_visible_to
from repositories.services import (
    repository_create,
    repository_delete,
    repository_set_immutable_tags,
    repository_update,
    star_add,
    star_remove,
)

NAMESPACE_PATTERN = r"[a-z0-9]+"
REPOSITORY_PATTERN = COMPONENT_PATTERN
NOT_FOUND = "Object not found."

ORDER_BY = {
    "name": [F("name").asc()],
    "-name": [F("name").desc()],
    "last_updated": [F("last_pushed_at").asc(nulls_first=True), F("name").asc()],
    "-last_updated": [F("last_pushed_at").desc(nulls_last=True), F("name").asc()],
    "pull_count": [F("pull_count").asc(), F("name").asc()],
    "-pull_count": [F("pull_count").desc(), F("name").asc()],
}
TAG_ORDER_BY = {
    "name": ["name"], "-name": ["-name"],
    "last_updated": ["pushed_at", "name"], "-last_updated": ["-pushed_at", "name"],
}


@functools.cache
def _count_templates() -> dict[str, str]:
    """The per-row subqueries of annotate_for_api, `{id}` standing for the repository's id."""
    links, blob = RepositoryBlob, RepositoryBlob._meta.get_field("blob").related_model
    return {
        "collaborators": (f"SELECT COUNT(*) FROM {table(Collaborator)} api_c"  # noqa: S608 - see lib.sql
                          f" WHERE api_c.{column(Collaborator, 'repository')} = {{id}}"),
        "storage": (f"SELECT COALESCE(SUM(api_b.{column(blob, 'size')}), 0) FROM {table(links)} api_l"  # noqa: S608
                    f" INNER JOIN {table(blob)} api_b ON api_b.{column(blob, 'id')} = api_l.{column(links, 'blob')}"
                    f" WHERE api_l.{column(links, 'repository')} = {{id}}"),
        "starred": (f"EXISTS (SELECT 1 FROM {table(Star)} api_s"  # noqa: S608
                    f" WHERE api_s.{column(Star, 'repository')} = {{id}} AND api_s.{column(Star, 'user')} = %s)"),
    }


def annotate_for_api(repositories: QuerySet[Repository], user) -> QuerySet[Repository]:
    """The per-repository counts the JSON shows, as subqueries on each row (lib.sql.RowSQL: a page of
    100 is one statement, and building it costs no ORM subqueries)."""
    sql, pk = _count_templates(), {"id": F("pk")}
    repositories = repositories.select_related("namespace").annotate(
        api_collaborator_count=RowSQL(sql["collaborators"], columns=pk, output_field=IntegerField()),
        api_storage_size=RowSQL(sql["storage"], columns=pk, output_field=BigIntegerField()),
    )
    if getattr(user, "is_authenticated", False):
        repositories = repositories.annotate(api_has_starred=RowSQL(
            sql["starred"], columns=pk, params=(user.pk,), output_field=BooleanField()))
    return repositories


# The columns a list's JSON shows (RepositorySerializer.to_representation) and permissions read.
LIST_COLUMNS = ("namespace", "name", "is_private", "description", "full_description", "is_automated", "star_count",
                "pull_count", "last_pushed_at", "created_at", "immutable_tags", "immutable_tags_rules")


def repository_page_data(view: GenericViewSet, page: list[Repository]) -> list:
    """A page of repositories serialized with their permissions computed for the whole page at once."""
    context = view.get_serializer_context()
    context["actions_by_id"] = repository_actions_many(context["actor"], page)
    return view.get_serializer_class()(page, many=True, context=context).data


class RepositoryAction(BasePermission):
    """The caller may do the action the view names for this request (`view.needed_action()`)."""

    message = "You do not have permission to do this on this repository."

    def has_object_permission(self, request: Request, view, obj) -> bool:
        return view.needed_action() in repository_actions(request_actor(request), obj)


class RepositoryScopedMixin:
    """Finds `<namespace>/<repository>` among the repositories the caller may see."""

    permission_classes = [RepositoryAction]
    needed: dict[str, str] = {}

    def needed_action(self) -> str:
        method_key = f"{self.action}:{self.request.method}"
        return self.needed.get(method_key, self.needed.get(self.action, ADMIN))

    def actor(self):
        return request_actor(self.request)

    def get_repository(self) -> Repository:
        repository = (
            annotate_for_api(repositories_visible_to(self.actor()), self.request.user)
            .filter(namespace__name=self.kwargs["namespace"], name=self.kwargs["repository"]).first()
        )
        if repository is None:
            raise exceptions.NotFound(NOT_FOUND)
        self.check_object_permissions(self.request, repository)
        return repository

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "actor": self.actor()}


def _namespace_or_404(name: str) -> Namespace:
    namespace = Namespace.objects.filter(name=name, deleted_at=None).first()
    if namespace is None:
        raise exceptions.NotFound(NOT_FOUND)
    return namespace


class RepositoryViewSet(RepositoryScopedMixin, GenericViewSet):
    """The legacy `/v2/repositories/<ns>[/<repo>]` (README-sync tools use it): list, detail, stars, stats."""

    serializer_class = s.RepositorySerializer
    lookup_url_kwarg = "repository"
    lookup_value_regex = REPOSITORY_PATTERN
    needed = {"retrieve": PULL, "partial_update": ADMIN, "destroy": ADMIN, "stars": PULL, "stats": PULL,
              "immutable_tags": ADMIN}

    def get_queryset(self) -> QuerySet[Repository]:
        return annotate_for_api(repositories_visible_to(self.actor()), self.request.user)

    def get_permissions(self):
        if self.action == "stars":
            return [IsAuthenticated(), RepositoryAction()]
        return super().get_permissions()

    @extend_schema(parameters=[s.RepositoryListQuerySerializer], responses=s.RepositorySerializer(many=True),
                   summary="List a namespace's repositories the caller may see")
    def list(self, request: Request, namespace: str) -> Response:
        found = _namespace_or_404(namespace)
        query = s.RepositoryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        ordering = ORDER_BY[query.validated_data.get("ordering", "-last_updated")]
        # One namespace: no join for it, and only the columns the JSON shows (a page has 100 rows).
        repositories = (self.get_queryset().select_related(None).filter(namespace=found).only(*LIST_COLUMNS)
                        .order_by(*ordering, "pk"))
        page = self.paginate_queryset(repositories)
        for repository in page:
            repository.namespace = found
        return self.get_paginated_response(repository_page_data(self, page))

    @extend_schema(summary="A repository")
    def retrieve(self, request: Request, namespace: str, repository: str) -> Response:
        return Response(self.get_serializer(self.get_repository()).data)

    @extend_schema(request=s.RepositoryUpdateSerializer, responses=s.RepositorySerializer,
                   summary="Change descriptions or visibility (admins)")
    def partial_update(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        data = s.RepositoryUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        repository_update(repository=found, **data.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=found.pk)).data)

    @extend_schema(responses={202: None}, summary="Delete a repository with its tags (admins)")
    def destroy(self, request: Request, namespace: str, repository: str) -> Response:
        repository_delete(repository=self.get_repository(), user=request.user)
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.ImmutableTagsSerializer, responses=s.RepositorySerializer,
                   summary="Make tags immutable: all of them, or those a rule matches (admins)")
    @action(detail=True, methods=["patch"], url_path="immutabletags")
    def immutable_tags(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        data = s.ImmutableTagsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on("immutable_tags_rules"):
            repository_set_immutable_tags(repository=found, enabled=data.validated_data["immutable_tags"],
                                          rules=data.validated_data["immutable_tags_rules"])
        return Response(self.get_serializer(self.get_queryset().get(pk=found.pk)).data)

    @extend_schema(methods=["POST"], request=None, responses={201: s.StarSerializer}, summary="Star")
    @extend_schema(methods=["DELETE"], request=None, responses={200: s.StarSerializer}, summary="Unstar")
    @action(detail=True, methods=["post", "delete"], url_path="stars")
    def stars(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        if request.method == "POST":
            star_add(repository=found, user=request.user)
            answer = status.HTTP_201_CREATED
        else:
            star_remove(repository=found, user=request.user)
            answer = status.HTTP_200_OK
        starred = Star.objects.filter(repository=found, user=request.user).exists()
        star_count = Repository.objects.values_list("star_count", flat=True).get(pk=found.pk)
        return Response(s.StarSerializer({"has_starred": starred, "star_count": star_count}).data, status=answer)

    @extend_schema(parameters=[s.StatsQuerySerializer], responses=s.StatsSerializer,
                   summary="Daily pulls over the last `days` days (1–365, default 30)")
    @action(detail=True, methods=["get"], url_path="stats")
    def stats(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        query = s.StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        days = query.validated_data["days"]
        today = timezone.now().date()
        first = today - dt.timedelta(days=days - 1)
        counts = dict(PullStat.objects.filter(repository=found, tag="", day__gte=first, day__lte=today)
                      .values_list("day", "count"))
        series = [{"date": first + dt.timedelta(days=i), "pull_count": counts.get(first + dt.timedelta(days=i), 0)}
                  for i in range(days)]
        body = {"days": days, "pull_count": found.pull_count, "pulls_in_period": sum(counts.values()),
                "star_count": found.star_count, "results": series}
        return Response(s.StatsSerializer(body).data)


class RepositoryCreateMixin:
    """Creating a repository, whichever path names the namespace: one permission check, one service."""

    def check_may_create(self, namespace: Namespace) -> None:
        if not may_create_repository(self.actor(), namespace):
            raise exceptions.PermissionDenied("You may not create repositories in this namespace.")

    def create_in(self, namespace: Namespace, values: dict) -> Response:
        """Create in `namespace` from validated `RepositoryCreateSerializer` values: 201, or 400 `name`."""
        with service_errors_on("name"):
            repository = repository_create(namespace=namespace, user=self.request.user, **values)
        repository = self.get_queryset().get(pk=repository.pk)
        return Response(self.get_serializer(repository).data, status=status.HTTP_201_CREATED)


class NamespaceRepositoryViewSet(RepositoryCreateMixin, RepositoryViewSet):
    """`/v2/namespaces/<ns>/repositories`: also creates repositories."""

    @extend_schema(request=s.RepositoryCreateSerializer, responses={201: s.RepositorySerializer},
                   summary="Create a repository in a namespace")
    def create(self, request: Request, namespace: str) -> Response:
        found = _namespace_or_404(namespace)
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        self.check_may_create(found)
        data = s.RepositoryCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self.create_in(found, data.validated_data)


class LegacyRepositoryCreateViewSet(RepositoryCreateMixin, RepositoryScopedMixin, GenericViewSet):
    """`POST /v2/repositories/` with the namespace in the body: the older Docker Hub path (Terraform, hub-tool)."""

    serializer_class = s.RepositorySerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self) -> QuerySet[Repository]:
        return annotate_for_api(repositories_visible_to(self.actor()), self.request.user)

    @extend_schema(request=s.LegacyRepositoryCreateSerializer, responses={201: s.RepositorySerializer},
                   summary="Create a repository (namespace in the body)")
    def create(self, request: Request) -> Response:
        data = s.LegacyRepositoryCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        found = _namespace_or_404(values.pop("namespace"))
        self.check_may_create(found)
        return self.create_in(found, values)


class TagViewSet(RepositoryScopedMixin, GenericViewSet):
    """`…/<repo>/tags[/<tag>]` in both path styles. Attachment tags (signatures, SBOMs) are never listed."""

    serializer_class = s.TagSerializer
    lookup_url_kwarg = "tag"
    lookup_value_regex = TAG_PATTERN
    needed = {"list": PULL, "retrieve": PULL, "destroy": DELETE}

    def get_queryset(self) -> QuerySet[Tag]:
        return registry_selectors.listed_tags()

    def _tags(self) -> QuerySet[Tag]:
        return self.get_queryset().filter(repository=self.get_repository())

    def _tag(self) -> Tag:
        tag = self._tags().filter(name=self.kwargs["tag"]).first()
        if tag is None:
            raise exceptions.NotFound(NOT_FOUND)
        return tag

    @extend_schema(parameters=[s.TagListQuerySerializer], summary="A repository's tags, newest first")
    def list(self, request: Request, namespace: str, repository: str) -> Response:
        query = s.TagListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tags = self._tags()
        if query.validated_data.get("name"):
            tags = tags.filter(name__icontains=query.validated_data["name"])
        tags = tags.order_by(*TAG_ORDER_BY[query.validated_data.get("ordering", "-last_updated")], "pk")
        page = self.paginate_queryset(tags)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(summary="One tag with its images (one per platform)")
    def retrieve(self, request: Request, namespace: str, repository: str, tag: str) -> Response:
        return Response(self.get_serializer(self._tag()).data)

    @extend_schema(responses={204: None}, summary="Delete a tag (needs delete rights)")
    def destroy(self, request: Request, namespace: str, repository: str, tag: str) -> Response:
        found = self._tag()
        try:
            tag_delete(repository=found.repository, tag_name=found.name, user=request.user)
        except TagImmutable as exc:
            raise exceptions.PermissionDenied(exc.message) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class SearchPagination(HubPagination):
    """Docker Hub's pages, with a count that stops at `search.COUNT_LIMIT` (an empty query matches all)."""

    cap: CountCap | None = None  # the search's, set by the view

    def django_paginator_class(self, queryset, page_size: int) -> CappedCountPaginator:
        return CappedCountPaginator(queryset, page_size, cap=self.cap)

    def get_paginated_response(self, data) -> Response:
        response = super().get_paginated_response(data)
        response.data["count"] = self.page.paginator.shown_count
        return response


class SearchViewSet(GenericViewSet):
    """`/v2/search/repositories/?query=`: exact matches first, then stars and pulls; only what one may see."""

    serializer_class = s.SearchResultSerializer
    pagination_class = SearchPagination

    def get_queryset(self) -> QuerySet[Repository]:
        return Repository.objects.none()

    @extend_schema(parameters=[s.SearchQuerySerializer], summary="Search repositories")
    def list(self, request: Request) -> Response:
        query = s.SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        actor = request_actor(request)
        results = search_queryset(actor=actor, query=query.validated_data["query"])
        self.paginator.cap = CountCap(query=query.validated_data["query"], official=False, actor=actor)
        page = self.paginate_queryset(results)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class StarredViewSet(GenericViewSet):
    """`/v2/users/<name>/starred/`: the repositories a user starred that the caller may see."""

    serializer_class = s.RepositorySerializer

    def get_queryset(self) -> QuerySet[Repository]:
        return Repository.objects.none()

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "actor": request_actor(self.request)}

    @extend_schema(summary="Repositories a user starred")
    def list(self, request: Request, username: str) -> Response:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise exceptions.NotFound(NOT_FOUND)
        repositories = annotate_for_api(repositories_visible_to(request_actor(request)), request.user)
        starred = repositories.filter(stars__user=user).order_by("-stars__created_at", "pk")
        page = self.paginate_queryset(starred)
        return self.get_paginated_response(repository_page_data(self, page))
