"""The one visibility rule for lists: UI, Hub API, catalog and search all use it."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import AccessToken, Namespace, Team
from repositories.models import Repository
from repositories.permissions import Actor


def repositories_visible_to(actor: Actor) -> QuerySet[Repository]:
    """Repositories `actor` may pull: every public one plus the private ones they are allowed."""
    repositories = Repository.objects.select_related("namespace")
    user = actor.user
    if user is None or actor.token_scope == AccessToken.Scope.PUBLIC_READ:
        return repositories.filter(is_private=False)
    allowed = (
        Q(is_private=False)
        | Q(namespace__user=user)
        | Q(collaborators__user=user)
        | Q(namespace__organization__teams__name=Team.OWNERS,
            namespace__organization__teams__memberships__user=user)
        | Q(team_permissions__team__memberships__user=user)
    )
    if user.is_staff:
        allowed |= Q(namespace__kind=Namespace.Kind.LIBRARY)
    ids = repositories.filter(allowed).values("pk")
    return repositories.filter(pk__in=ids)
