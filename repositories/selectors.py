"""Reads of repositories: the one visibility rule for lists (UI, Hub API, catalog and search all use
it), the repository a request may see, dashboards, discovery and statistics.

Everything here is bounded by the page it serves (limits, paging, one repository's rows); nothing
scans the whole database. Registry content (tags, images) is read through registry/selectors.py.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from django.db.models import BooleanField, Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from accounts.models import Membership, Namespace, Team
from accounts.services import user_organizations
from lib.sql import RowSQL, column, table
from repositories.models import Collaborator, PullStat, Repository, Star, TeamPermission
from repositories.permissions import ADMIN, DELETE, PULL, PUSH, Actor, repository_actions
from repositories.rows import ROW_COLUMNS


def repositories_visible_to(actor: Actor) -> QuerySet[Repository]:
    """Repositories `actor` may pull: every public one plus the private ones they are allowed;
    never one still waiting for the first manifest of the push that created it.

    Each grant is a small subquery over the user's own rows (their namespaces, collaborations,
    team grants), so the rule is a test on the repository row alone: a search or a page reads
    the rows it needs, never the whole table. (Joining the grant tables instead made PostgreSQL
    build the set of every visible id for each query, ~0.5 s at 100,000 repositories.)
    """
    # A repository a push created shows from its first manifest (Repository.is_pending): a test on
    # the row itself, like is_private, so every index the lists use still serves them.
    repositories = Repository.objects.select_related("namespace").filter(is_pending=False)
    if actor.sees_public_only:
        return repositories.filter(is_private=False)
    return repositories.filter(VisibleTo(actor.user.pk, staff=actor.user.is_staff))


class VisibleTo(RowSQL):
    """The rule for a signed-in user as one SQL condition on the repository row:

        NOT is_private
        OR namespace_id IN (their own namespace)
        OR namespace_id IN (the namespaces of organizations whose owners team has them)
        OR id IN (repositories they collaborate on)
        OR id IN (repositories their teams were granted)
        [OR namespace_id IN (the `library` namespace), for staff]

    Hand-written (lib.sql.RowSQL) because the ORM took ~3.5 ms to build those four subqueries for
    every statement (a signed-in search makes four). The same rule, one repository at a time, is
    `repositories.permissions`; tests hold the two together.
    """

    def __init__(self, user_id: int, *, staff: bool = False):
        user_id = int(user_id)
        params: tuple = (user_id, Team.OWNERS, user_id, user_id, user_id)
        if staff:
            params += (Namespace.Kind.LIBRARY.value,)
        super().__init__(_visible_to_template(staff), params=params, output_field=BooleanField(),
                         columns={"is_private": F("is_private"), "namespace_id": F("namespace_id"), "id": F("pk")})


@functools.cache
def _visible_to_template(staff: bool) -> str:
    """VisibleTo's SQL, `{column}` for the repository row's columns and `%s` for its parameters."""
    template = (
        "NOT {is_private}"  # noqa: S608 - identifiers from model metadata; values are parameters
        f" OR {{namespace_id}} IN (SELECT wv_n.{column(Namespace, 'id')} FROM {table(Namespace)} wv_n"
        f" WHERE wv_n.{column(Namespace, 'user')} = %s)"
        f" OR {{namespace_id}} IN (SELECT wv_o.{column(Namespace, 'id')} FROM {table(Namespace)} wv_o"
        f" WHERE wv_o.{column(Namespace, 'organization')} IN ("
        f"SELECT wv_t.{column(Team, 'organization')} FROM {table(Team)} wv_t INNER JOIN {table(Membership)} wv_m"
        f" ON wv_m.{column(Membership, 'team')} = wv_t.{column(Team, 'id')}"
        f" WHERE wv_t.{column(Team, 'name')} = %s AND wv_m.{column(Membership, 'user')} = %s))"
        f" OR {{id}} IN (SELECT wv_c.{column(Collaborator, 'repository')} FROM {table(Collaborator)} wv_c"
        f" WHERE wv_c.{column(Collaborator, 'user')} = %s)"
        f" OR {{id}} IN (SELECT wv_p.{column(TeamPermission, 'repository')} FROM {table(TeamPermission)} wv_p"
        f" INNER JOIN {table(Membership)} wv_pm ON wv_pm.{column(Membership, 'team')} = "
        f"wv_p.{column(TeamPermission, 'team')} WHERE wv_pm.{column(Membership, 'user')} = %s)"
    )
    if staff:
        template += (f" OR {{namespace_id}} IN (SELECT wv_l.{column(Namespace, 'id')}"  # noqa: S608
                     f" FROM {table(Namespace)} wv_l WHERE wv_l.{column(Namespace, 'kind')} = %s)")
    return template


# --- pages: the repository a request may see ------------------------------------------------------

DASHBOARD_SORTS = {
    "pushed": (),  # last pushed first, never-pushed last (see dashboard_repositories)
    "name": ("namespace__name", "name"),
    "pulls": ("-pull_count", "namespace__name", "name"),
    "stars": ("-star_count", "namespace__name", "name"),
}
STAT_RANGES = (30, 90, 365)


@dataclass
class RepositoryAccess:
    """A repository and what the current user may do with it (the tabs follow from this)."""

    repository: Repository
    actions: frozenset[str]
    is_starred: bool = False

    @property
    def can_push(self) -> bool:
        return PUSH in self.actions

    @property
    def can_delete(self) -> bool:
        return DELETE in self.actions

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.actions


def repository_for_request(request, namespace: str, name: str, *, need: str = PULL) -> RepositoryAccess:
    """The repository, or 404 when it does not exist or the user may not `need` it (never 403)."""
    repository = (
        Repository.objects.select_related("namespace", "namespace__user", "namespace__organization")
        .filter(namespace__name=namespace, name=name, namespace__deleted_at=None, is_pending=False)
        .first()
    )
    if repository is None:
        raise Http404("No such repository")
    actions = repository_actions(Actor.for_user(request.user), repository)
    if PULL not in actions or need not in actions:
        raise Http404("No such repository")
    starred = request.user.is_authenticated and Star.objects.filter(repository=repository, user=request.user).exists()
    return RepositoryAccess(repository=repository, actions=actions, is_starred=starred)


def starred_ids(user, repositories) -> set[int]:
    """Which of these repositories `user` has starred (one query for a page of results)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    ids = [repository.pk for repository in repositories]
    return set(Star.objects.filter(user=user, repository_id__in=ids).values_list("repository_id", flat=True))


# --- dashboard ------------------------------------------------------------------------------------


def user_namespaces(user) -> list[Namespace]:
    """The user's own namespace and those of their organizations.

    The organizations are read first: `user_id = x OR organization_id IN (subquery)` left PostgreSQL
    nothing but a scan of every namespace (32 ms at 100,000 accounts), while an OR of two lists of
    keys is a lookup in each of the two unique indexes."""
    organization_ids = list(user_organizations(user=user).values_list("pk", flat=True))
    return list(Namespace.objects.filter(Q(user=user) | Q(organization_id__in=organization_ids)).order_by("name"))


def dashboard_repositories(user, namespaces: list[Namespace], *, namespace: str = "", visibility: str = "",
                           sort: str = "pushed") -> QuerySet[Repository]:
    repositories = repositories_visible_to(Actor.for_user(user)).filter(namespace__in=namespaces)
    if namespace:
        repositories = repositories.filter(namespace__name=namespace)
    if visibility in ("public", "private"):
        repositories = repositories.filter(is_private=visibility == "private")
    if sort in DASHBOARD_SORTS and sort != "pushed":
        return repositories.order_by(*DASHBOARD_SORTS[sort])
    return repositories.order_by(F("last_pushed_at").desc(nulls_last=True), "namespace__name", "name")


def starred_repositories(user, limit: int = 10) -> list[Repository]:
    visible = repositories_visible_to(Actor.for_user(user)).values("pk")
    stars = (Star.objects.filter(user=user, repository__in=visible)
             .select_related("repository__namespace").order_by("-created_at")[:limit])
    return [star.repository for star in stars]


# --- discovery ------------------------------------------------------------------------------------


def public_repositories() -> QuerySet[Repository]:
    return Repository.objects.select_related("namespace").filter(is_private=False, is_pending=False,
                                                                 namespace__deleted_at=None)


def explore_sections(limit: int = 12) -> dict[str, list[Repository]]:
    public = public_repositories().only(*ROW_COLUMNS)  # what rows show: never the READMEs
    by_name = ("namespace__name", "name")
    return {
        "official": list(public.filter(namespace__kind=Namespace.Kind.LIBRARY).order_by("-pull_count", "name")[:limit]),
        "most_pulled": list(public.filter(pull_count__gt=0).order_by("-pull_count", *by_name)[:limit]),
        "most_starred": list(public.filter(star_count__gt=0).order_by("-star_count", *by_name)[:limit]),
        "recent": list(public.filter(last_pushed_at__isnull=False).order_by("-last_pushed_at")[:limit]),
    }


# --- statistics -----------------------------------------------------------------------------------


def daily_pulls(repository: Repository, days: int, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    today = today or timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    counts = dict(PullStat.objects.filter(repository=repository, tag="", day__gte=start, day__lte=today)
                  .values_list("day", "count"))
    return [(start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0)) for i in range(days)]


def stars_over_time(repository: Repository, days: int, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    """The running number of stars at the end of each day."""
    today = today or timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    start_at = timezone.make_aware(dt.datetime.combine(start, dt.time.min), dt.UTC)
    before = Star.objects.filter(repository=repository, created_at__lt=start_at).count()
    per_day = dict(Star.objects.filter(repository=repository, created_at__gte=start_at)
                   .annotate(day=TruncDate("created_at", tzinfo=dt.UTC)).values("day")
                   .annotate(n=Count("pk")).values_list("day", "n"))
    running, points = before, []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        running += per_day.get(day, 0)
        points.append((day, running))
    return points


def profile_repositories(namespace: Namespace, user, limit: int = 50) -> list[Repository]:
    """A profile's repositories: the public ones, plus the private ones `user` may see."""
    visible = repositories_visible_to(Actor.for_user(user)).filter(namespace=namespace)
    return list(visible.order_by("-pull_count", "name")[:limit])
