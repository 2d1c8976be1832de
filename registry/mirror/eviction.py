"""HUB_MIRROR_MAX_BYTES: the pull-through cache's bound (README, "Pull-through cache").

A periodic task (registry.evict_mirrors) sums the bytes of the blobs linked to mirrored repositories
and, while the sum is over the bound, deletes the least recently pulled mirrored repository (its
last pull, or its creation if it was never counted as pulled): its tags, manifests and links go, and
the blobs no other repository links are swept at once, as when a repository is deleted. What is
evicted is fetched again on its next pull. Garbage collection needs nothing more: a mirrored
repository's tags, index edges and blob references are recorded like a pushed one's.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from accounts.models import Namespace
from registry.models import Blob, RepositoryBlob
from repositories.models import Repository
from repositories.services import repository_delete

logger = logging.getLogger(__name__)


def mirror_usage() -> int:
    """Bytes of the blobs linked to any mirrored repository (each blob once)."""
    linked = RepositoryBlob.objects.filter(repository__namespace__kind=Namespace.Kind.MIRROR).values("blob_id")
    return Blob.objects.filter(pk__in=linked).aggregate(total=Sum("size"))["total"] or 0


def evict_mirrors(max_bytes: int | None = None) -> list[str]:
    """Delete least recently pulled mirrored repositories until the cache fits; their names."""
    limit = settings.HUB_MIRROR_MAX_BYTES if max_bytes is None else max_bytes
    if not limit:
        return []
    usage = mirror_usage()
    evicted: list[str] = []
    if usage <= limit:
        return evicted
    candidates = (Repository.objects.select_related("namespace")
                  .filter(namespace__kind=Namespace.Kind.MIRROR)
                  .annotate(used_at=Coalesce(F("last_pulled_at"), F("created_at")))
                  .order_by("used_at", "pk"))
    for repository in candidates.iterator():
        if usage <= limit:
            break
        name = repository.full_name
        repository_delete(repository=repository)
        evicted.append(name)
        usage = mirror_usage()
    logger.info("mirror cache: evicted %d repositories, %d bytes left (bound %d)", len(evicted), usage, limit)
    return evicted
