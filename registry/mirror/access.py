"""Who may do what with mirrored names: pull only, never push or delete (README, "Pull-through cache").

- Signed-in users (and organization access tokens) may pull; anonymous clients too when
  HUB_MIRROR_ANONYMOUS is on (dockerd sends no credentials to a registry mirror).
- HUB_MIRROR_READERS limits a prefix to the members of the organizations it names (an organization
  access token of one of them too); anonymous pulls of such a prefix are refused whatever
  HUB_MIRROR_ANONYMOUS says, since its credentials may read private upstream content.
"""

from __future__ import annotations

from django.conf import settings

from accounts.models import Membership
from repositories.permissions import PULL, Actor

PULL_ONLY = frozenset({PULL})
NOTHING: frozenset[str] = frozenset()


def mirror_actions(actor: Actor, prefix: str) -> frozenset[str]:
    """What `actor` may do with any repository under the mirror `prefix`: pull, or nothing."""
    readers = settings.HUB_MIRROR_READERS.get(prefix)
    if actor.organization_token is not None:
        if readers is None or actor.organization_token.organization_name in readers:
            return PULL_ONLY
        return NOTHING
    if actor.user is None:
        return PULL_ONLY if settings.HUB_MIRROR_ANONYMOUS and readers is None else NOTHING
    if readers is None:
        return PULL_ONLY
    member = Membership.objects.filter(user=actor.user, team__organization__name__in=readers).exists()
    return PULL_ONLY if member else NOTHING
