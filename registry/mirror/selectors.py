"""Mirrored repositories for the site's pages: search and explore show them to whoever may pull them,
as "mirror of docker.io/library/alpine", with their pull counts and last upstream check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from accounts.models import Namespace
from registry.mirror.access import mirror_actions
from repositories.models import Repository
from repositories.permissions import PULL, Actor


@dataclass(frozen=True)
class MirrorRow:
    name: str  # "dockerhub/library/alpine": what to pull from Wharf
    upstream: str  # "docker.io/library/alpine"
    pull_count: int
    last_checked_at: datetime | None  # the last upstream fetch or tag revalidation (upstream_checked_at)
    last_pulled_at: datetime | None


def mirrored_repositories(user, *, query: str = "", limit: int = 12) -> list[MirrorRow]:
    """The mirrored repositories `user` may pull (whose name contains `query`), most pulled first."""
    if not settings.HUB_MIRRORS:
        return []
    actor = Actor.for_user(user)
    prefixes = [prefix for prefix in settings.HUB_MIRRORS if PULL in mirror_actions(actor, prefix)]
    if not prefixes:
        return []
    rows = (Repository.objects.filter(namespace__kind=Namespace.Kind.MIRROR, namespace__name__in=prefixes)
            .select_related("namespace").order_by("-pull_count", "namespace__name", "name"))
    if query:
        rows = rows.filter(name__icontains=query.strip().lower())
    return [MirrorRow(name=f"{r.namespace.name}/{r.name}",
                      upstream=f"{settings.HUB_MIRRORS[r.namespace.name].display}/{r.name}",
                      pull_count=r.pull_count, last_checked_at=r.upstream_checked_at, last_pulled_at=r.last_pulled_at)
            for r in rows[:limit]]
