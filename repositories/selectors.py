"""The one visibility rule for lists: UI, Hub API, catalog and search all use it."""

from __future__ import annotations

import functools

from django.db.models import BooleanField, F, QuerySet

from accounts.models import Membership, Namespace, Team
from lib.sql import RowSQL, column, table
from repositories.models import Collaborator, Repository, TeamPermission
from repositories.permissions import Actor


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
