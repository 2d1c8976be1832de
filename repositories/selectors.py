"""The one visibility rule for lists: UI, Hub API, catalog and search all use it."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import AccessToken, Namespace, Team
from repositories.models import Collaborator, Repository, TeamPermission
from repositories.permissions import Actor


def repositories_visible_to(actor: Actor) -> QuerySet[Repository]:
    """Repositories `actor` may pull: every public one plus the private ones they are allowed.

    Each grant is a small subquery over the user's own rows (their namespaces, collaborations,
    team grants), so the rule is a test on the repository row alone: a search or a page reads
    the rows it needs, never the whole table. (Joining the grant tables instead made PostgreSQL
    build the set of every visible id for each query, ~0.5 s at 100,000 repositories.)
    """
    repositories = Repository.objects.select_related("namespace")
    user = actor.user
    if user is None or actor.token_scope == AccessToken.Scope.PUBLIC_READ:
        return repositories.filter(is_private=False)
    owned_organizations = Team.objects.filter(name=Team.OWNERS, memberships__user=user).values("organization_id")
    allowed = (
        Q(is_private=False)
        | Q(namespace_id__in=Namespace.objects.filter(user=user).values("pk"))
        | Q(namespace_id__in=Namespace.objects.filter(organization__in=owned_organizations).values("pk"))
        | Q(pk__in=Collaborator.objects.filter(user=user).values("repository_id"))
        | Q(pk__in=TeamPermission.objects.filter(team__memberships__user=user).values("repository_id"))
    )
    if user.is_staff:
        allowed |= Q(namespace_id__in=Namespace.objects.filter(kind=Namespace.Kind.LIBRARY).values("pk"))
    return repositories.filter(allowed)
