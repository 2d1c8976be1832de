"""Repository search: exact name matches first, then stars, then pulls; only what one may see.

A word matches a repository when it is part of its name, of its namespace's name or of its short
description (case-insensitive); `ns/name` matches both parts. On PostgreSQL the three substring
tests use trigram GIN indexes (migration 0003), so a search reads the rows that match, not the
table; SQLite takes the simpler path of one scan.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils.functional import cached_property

from accounts.models import Namespace
from repositories.models import Repository
from repositories.permissions import Actor
from repositories.selectors import repositories_visible_to

# A search counts its results no further than this: "1,000+" (the API says 1000), and pages that far.
# Counting further costs every page of a common word (or of no word) a scan of 10,000 rows.
COUNT_LIMIT = 1_000

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


# Best match after the exact name matches: popularity, then names (the (star_count, pull_count)
# index gives the first two, so a common word's first page is read in order, not sorted).
POPULARITY = ("-star_count", "-pull_count", "namespace__name", "name")
# Exact name matches put first (one per namespace at most; more than this is not a real search).
EXACT_LIMIT = 100


class BestMatch:
    """The matches of a search in best-match order, as a sequence that pages like a queryset.

    The exact name matches come first (a handful, through the name's trigram index), then every
    other match by stars and pulls. As one ORDER BY (exact first) PostgreSQL had to fetch and sort
    every match of a common word (thousands of rows) for each page; as two queries the second one
    walks the popularity index and stops at the end of the page. Supports what the callers use:
    slicing, iteration, len/count, and filter/defer/order_by (an explicit order gives a plain
    queryset: the exact matches then lose their place, as with any other sort).
    """

    def __init__(self, visible: QuerySet[Repository], matches: Q, exact: Q):
        self.visible = visible  # what the searcher may see (and any filter a caller added)
        self.matches = visible.filter(matches)
        self._match, self.exact = matches, exact  # an exact match is a match: `exact` is tested alone

    def _chain(self, visible: QuerySet[Repository]) -> BestMatch:
        return BestMatch(visible, self._match, self.exact)

    def filter(self, *args, **kwargs) -> BestMatch:
        return self._chain(self.visible.filter(*args, **kwargs))

    def defer(self, *fields: str) -> BestMatch:
        return self._chain(self.visible.defer(*fields))

    def order_by(self, *fields: str) -> QuerySet[Repository]:
        return self.matches.order_by(*fields)

    @cached_property
    def _exact_ids(self) -> list[int]:
        # Sorted here, and without joining the namespaces: with an ORDER BY (or a join) PostgreSQL
        # may walk the popularity index, or hash every namespace, to find a handful of rows. The
        # namespace's name (for ties) is a subquery on each of those rows.
        namespace_name = Namespace.objects.filter(pk=OuterRef("namespace_id")).values("name")[:1]
        rows = self.visible.filter(self.exact).order_by().annotate(
            namespace_name=Subquery(namespace_name)).values_list(
            "pk", "star_count", "pull_count", "namespace_name", "name")[:EXACT_LIMIT]
        return [row[0] for row in sorted(rows, key=lambda row: (-row[1], -row[2], row[3] or "", row[4]))]

    @cached_property
    def _others(self) -> QuerySet[Repository]:
        others = self.matches.exclude(pk__in=self._exact_ids) if self._exact_ids else self.matches
        return others.order_by(*POPULARITY)

    def _exact_rows(self, ids: list[int]) -> list[Repository]:
        by_id = {row.pk: row for row in self.visible.filter(pk__in=ids)}
        return [by_id[pk] for pk in ids if pk in by_id]

    def __getitem__(self, key):
        if isinstance(key, int):
            rows = self[key:key + 1]
            if not rows:
                raise IndexError(key)
            return rows[0]
        start, stop = key.start or 0, key.stop
        if key.step is not None or start < 0 or (stop is not None and stop < 0):
            raise ValueError("BestMatch takes plain, non-negative slices")
        exact_count = len(self._exact_ids)
        rows = self._exact_rows(self._exact_ids[start:stop]) if start < exact_count else []
        other_start = max(0, start - exact_count)
        if stop is None:
            return rows + list(self._others[other_start:])
        other_stop = max(0, stop - exact_count)
        return rows + (list(self._others[other_start:other_stop]) if other_stop > other_start else [])

    def __iter__(self):
        return iter(self[0:])

    def count(self) -> int:
        return self.matches.order_by().count()

    def __len__(self) -> int:
        return self.count()


def search_queryset(*, actor: Actor, query: str) -> QuerySet[Repository] | BestMatch:
    """What `actor` may see that matches `query`, best match first (see BestMatch); without words,
    everything visible by stars and pulls."""
    repositories = repositories_visible_to(actor)
    query = query.strip().lower()
    if not query:
        return repositories.order_by(*POPULARITY)
    namespace, _, name = query.rpartition("/")
    if namespace:
        matches = Q(namespace__name__icontains=namespace, name__icontains=name)
        exact = Q(namespace__name=namespace, name=name)
    else:
        matches = _word_matches(query)
        exact = Q(name=query)  # official or not: then stars and pulls decide (index repository_name)
    return BestMatch(repositories, matches, exact)


def search_repositories(*, actor: Actor, query: str, offset: int, limit: int) -> tuple[list[Repository], int]:
    queryset = search_queryset(actor=actor, query=query)
    return list(queryset[offset: offset + limit]), queryset.count()


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT + 1 rows (unordered, so the database stops there), not every match."""

    @cached_property
    def count(self) -> int:
        # Without the joins select_related adds for the rows: a count needs none of them.
        return self.object_list.order_by().select_related(None)[: COUNT_LIMIT + 1].count()

    @property
    def count_is_capped(self) -> bool:
        return self.count > COUNT_LIMIT

    @property
    def shown_count(self) -> int:
        return min(self.count, COUNT_LIMIT)
