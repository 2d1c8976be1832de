"""Repository search: exact name matches first, then stars, then pulls; only what one may see."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from repositories.models import Repository
from repositories.permissions import Actor
from repositories.selectors import repositories_visible_to


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
        matches = Q(name__icontains=query) | Q(namespace__name__icontains=query) | Q(description__icontains=query)
        exact = Q(name=query, namespace__name="library") | Q(name=query)
    return (
        repositories.filter(matches)
        .annotate(exact=Case(When(exact, then=Value(1)), default=Value(0), output_field=IntegerField()))
        .order_by("-exact", "-star_count", "-pull_count", "namespace__name", "name")
    )


def search_repositories(*, actor: Actor, query: str, offset: int, limit: int) -> tuple[list[Repository], int]:
    queryset = search_queryset(actor=actor, query=query)
    return list(queryset[offset: offset + limit]), queryset.count()
