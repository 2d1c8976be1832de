"""Repository search: exact name matches first, then stars, then pulls; only what one may see.

A word matches a repository when it is part of its name, of its namespace's name or of its short
description (case-insensitive); `ns/name` matches both parts. On PostgreSQL the three substring
tests use trigram GIN indexes (migration 0003), so a search reads the rows that match, not the
table; SQLite takes the simpler path of one scan.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils.functional import cached_property

from accounts.models import Namespace
from repositories.models import Repository
from repositories.permissions import Actor
from repositories.selectors import repositories_visible_to

# A search counts its results no further than this: "10,000+" (the API says 10000).
COUNT_LIMIT = 10_000

# More namespaces than this matching a word: the word is so common that a scan is the right plan.
NAMESPACE_IDS_LIMIT = 500


def _word_matches(query: str) -> Q:
    """Repositories whose name, namespace name or short description contains `query`."""
    if connections[Repository.objects.db].vendor != "postgresql":
        return Q(name__icontains=query) | Q(namespace__name__icontains=query) | Q(description__icontains=query)
    # An OR across two tables leaves PostgreSQL nothing to do but scan; with the namespaces looked
    # up first (namespace_name_trgm) every arm is on the repository row, and the three become one
    # BitmapOr of repository_name_trgm, repository_description_trgm and the namespace_id index.
    namespace_ids = list(Namespace.objects.filter(name__icontains=query).order_by()
                         .values_list("pk", flat=True)[: NAMESPACE_IDS_LIMIT + 1])
    if len(namespace_ids) > NAMESPACE_IDS_LIMIT:
        in_namespace = Q(namespace__name__icontains=query)
    else:
        in_namespace = Q(namespace_id__in=namespace_ids)
    return Q(name__icontains=query) | Q(description__icontains=query) | in_namespace


def search_queryset(*, actor: Actor, query: str) -> QuerySet[Repository]:
    repositories = repositories_visible_to(actor)
    query = query.strip().lower()
    if not query:
        return repositories.order_by("-star_count", "-pull_count", "namespace__name", "name")
    namespace, _, name = query.rpartition("/")
    if namespace:
        matches = Q(namespace__name__icontains=namespace, name__icontains=name)
        exact = Q(namespace__name=namespace, name=name)
    else:
        matches = _word_matches(query)
        exact = Q(name=query)  # official or not: then stars and pulls decide
    return (
        repositories.filter(matches)
        .annotate(exact=Case(When(exact, then=Value(1)), default=Value(0), output_field=IntegerField()))
        .order_by("-exact", "-star_count", "-pull_count", "namespace__name", "name")
    )


def search_repositories(*, actor: Actor, query: str, offset: int, limit: int) -> tuple[list[Repository], int]:
    queryset = search_queryset(actor=actor, query=query)
    return list(queryset[offset: offset + limit]), queryset.count()


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT + 1 rows (unordered, so the database stops there), not every match."""

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: COUNT_LIMIT + 1].count()

    @property
    def count_is_capped(self) -> bool:
        return self.count > COUNT_LIMIT

    @property
    def shown_count(self) -> int:
        return min(self.count, COUNT_LIMIT)
