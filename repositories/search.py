"""Repository search: exact name matches first, then stars, then pulls; only what one may see.

A word matches a repository when it is part of its name, of its namespace's name or of its short
description (case-insensitive); `ns/name` matches both parts. On PostgreSQL the three substring
tests use trigram GIN indexes (migration 0003), so a search reads the rows that match, not the
table; SQLite takes the simpler path of one scan.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

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

    def only(self, *fields: str) -> BestMatch:
        return self._chain(self.visible.only(*fields))

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


def search_queryset(*, actor: Actor, query: str, official: bool = False) -> QuerySet[Repository] | BestMatch:
    """What `actor` may see that matches `query` (with `official`, official images only), best match
    first (see BestMatch); without words, everything visible by stars and pulls."""
    repositories = repositories_visible_to(actor)
    if official:
        repositories = repositories.filter(namespace__kind=Namespace.Kind.LIBRARY)
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
    """One page of a search and its count, both bounded like the Hub's: the count stops at
    COUNT_LIMIT, and no page starts past it (an offset of a million would read a million rows)."""
    queryset = search_queryset(actor=actor, query=query)
    rows = list(queryset[offset: offset + limit]) if offset < COUNT_LIMIT else []
    return rows, min(capped_count(queryset, CountCap(query=query, official=False, actor=actor)), COUNT_LIMIT)


def capped_count(results, cap: CountCap | None = None) -> int:
    """How many `results`, counting no further than COUNT_LIMIT + 1; with `cap`, COUNT_LIMIT + 1
    without counting while that search's public matches are known to reach the limit."""
    if cap is not None and cap.recently_capped():
        return COUNT_LIMIT + 1
    # Without the joins select_related adds for the rows: a count needs none of them.
    count = results.order_by().select_related(None)[: COUNT_LIMIT + 1].count()
    if cap is not None:
        cap.remember_capped(count)
    return count


# Searches whose *public* matches reached COUNT_LIMIT lately, in this process: {key: when that
# expires (monotonic)}. For them "1,000+" stands for a minute without counting again: a common
# word's count reads a thousand rows, the largest part of its page. Exact counts below the limit
# are never remembered, and the rows themselves are always read live; at worst, for that minute,
# a search whose public matches just fell under the limit still says "1,000+".
CAPPED_SECONDS = 60.0
_CAPPED_KEYS = 4096
_capped: OrderedDict[tuple, float] = OrderedDict()
_capped_lock = threading.Lock()


def forget_capped_counts() -> None:
    with _capped_lock:
        _capped.clear()


@dataclass(frozen=True)
class CountCap:
    """What a search's count may be remembered under: its words, the official-only filter, and
    who is asking (a count reaching the limit is remembered only when public matches alone do)."""

    query: str
    official: bool
    actor: Actor

    @property
    def key(self) -> tuple:
        return (COUNT_LIMIT, self.query.strip().lower(), self.official)

    def recently_capped(self) -> bool:
        with _capped_lock:
            expires = _capped.get(self.key)
            if expires is None:
                return False
            if expires <= time.monotonic():
                del _capped[self.key]
                return False
            return True

    def remember_capped(self, count: int) -> None:
        """`count` (the asker's, capped) reached the limit: remember it if public matches do too."""
        if count <= COUNT_LIMIT:
            return
        public_only = self.actor.sees_public_only
        if not public_only and capped_count(search_queryset(actor=Actor(), query=self.query,
                                                            official=self.official)) <= COUNT_LIMIT:
            return
        with _capped_lock:
            _capped[self.key] = time.monotonic() + CAPPED_SECONDS
            _capped.move_to_end(self.key)
            while len(_capped) > _CAPPED_KEYS:
                _capped.popitem(last=False)


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_LIMIT + 1 rows (unordered, so the database stops there), not every match;
    with a `cap`, not even those while that search's public matches are known to reach the limit."""

    def __init__(self, object_list, per_page, *args, cap: CountCap | None = None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.cap = cap

    @cached_property
    def count(self) -> int:
        return capped_count(self.object_list, self.cap)

    @cached_property
    def num_pages(self) -> int:
        # Pages cover the COUNT_LIMIT matches shown, not the one counted past them.
        shown = self.shown_count
        if shown == 0 and not self.allow_empty_first_page:
            return 0
        return math.ceil(max(1, shown - self.orphans) / self.per_page)

    @property
    def count_is_capped(self) -> bool:
        return self.count > COUNT_LIMIT

    @property
    def shown_count(self) -> int:
        return min(self.count, COUNT_LIMIT)
