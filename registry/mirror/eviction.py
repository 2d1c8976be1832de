"""HUB_MIRROR_MAX_BYTES: the pull-through cache's bound (README, "Pull-through cache").

A periodic task (registry.evict_mirrors) sums the bytes of the blobs linked to mirrored repositories
and, while the sum is over the bound, deletes the least recently pulled mirrored repository (its
last pull, or its creation if it was never counted as pulled): its tags, manifests and links go, and
the blobs no other repository links are swept at once, as when a repository is deleted. What is
evicted is fetched again on its next pull. Garbage collection needs nothing more: a mirrored
repository's tags, index edges and blob references are recorded like a pushed one's.

A repository in use is never evicted, so a client mid-pull never gets MANIFEST_UNKNOWN or BLOB_UNKNOWN
for what it was just served: every mirrored manifest and blob request marks its repository active in
the cache for ACTIVE_SECONDS (renewed while a blob is being fetched; cluster-wide with Redis), and
eviction also spares a repository pulled or checked upstream within ACTIVE_SECONDS (the database's
word, for nodes that do not share a cache). A cache over its bound stays over it until they go quiet.

A pull that begins just as its quiet repository is chosen is not lost either: eviction marks the
repository as being evicted, then looks at its activity mark once more (and spares it if a request
marked it meanwhile); a manifest request marks the repository active, then looks for that eviction
mark (and, finding it, waits for the deletion and fetches anew into a fresh repository). Each side
writes before it reads, so at least one of them sees the other.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Namespace
from registry.models import Blob, RepositoryBlob
from repositories.models import Repository
from repositories.services import repository_delete

logger = logging.getLogger(__name__)


ACTIVE_SECONDS = 600  # a repository pulled, fetched into or checked upstream this recently stays
MARK_EVERY = 30.0  # a process marks a repository active at most this often (one cache write)
_marked: dict[int, float] = {}
_marked_lock = threading.Lock()


def _active_key(repository_id: int) -> str:
    return f"wharf:mirror:active:{repository_id}"


def mark_active(repository_id: int | None) -> None:
    """A request is using this mirrored repository: eviction leaves it alone for ACTIVE_SECONDS."""
    if repository_id is None:
        return
    now = time.monotonic()
    with _marked_lock:
        if now - _marked.get(repository_id, -MARK_EVERY) < MARK_EVERY:
            return
        _marked[repository_id] = now
        if len(_marked) > 10_000:
            _marked.clear()
    cache.set(_active_key(repository_id), 1, ACTIVE_SECONDS)


def is_active(repository_id: int) -> bool:
    return cache.get(_active_key(repository_id)) is not None


EVICTING_SECONDS = 300  # how long an eviction's mark outlives an evicting process that died
EVICTED_WAIT_SECONDS = 60.0  # a request waits at most this long for an eviction under way
_sleep = time.sleep


def _evicting_key(repository_id: int) -> str:
    return f"wharf:mirror:evicting:{repository_id}"


def waited_for_eviction(repository_id: int) -> bool:
    """After mark_active: True when this repository was being evicted (waited for until the deletion is
    over; the caller looks the repository up again, and fetches anew what is gone)."""
    key = _evicting_key(repository_id)
    if cache.get(key) is None:
        return False
    deadline = time.monotonic() + EVICTED_WAIT_SECONDS
    while cache.get(key) is not None and time.monotonic() < deadline:
        _sleep(0.1)
    return True


def forget_marks() -> None:
    """Forget this process's throttle of mark_active (tests)."""
    with _marked_lock:
        _marked.clear()


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
    recently = timezone.now() - timedelta(seconds=ACTIVE_SECONDS)
    candidates = (Repository.objects.select_related("namespace")
                  .filter(namespace__kind=Namespace.Kind.MIRROR)
                  .exclude(Q(last_pulled_at__gte=recently) | Q(upstream_checked_at__gte=recently)
                           | Q(created_at__gte=recently))
                  .annotate(used_at=Coalesce(F("last_pulled_at"), F("created_at")))
                  .order_by("used_at", "pk"))
    spared = 0
    for repository in candidates.iterator():
        if usage <= limit:
            break
        if is_active(repository.pk):  # a pull or a fetch is under way: its client must not lose it
            spared += 1
            continue
        cache.set(_evicting_key(repository.pk), 1, EVICTING_SECONDS)
        try:
            if is_active(repository.pk):  # a pull began just now (it saw no eviction mark): spare it
                spared += 1
                continue
            name = repository.full_name
            repository_delete(repository=repository)
        finally:
            cache.delete(_evicting_key(repository.pk))
        evicted.append(name)
        usage = mirror_usage()
    logger.info("mirror cache: evicted %d repositories, %d bytes left (bound %d), %d in use spared",
                len(evicted), usage, limit, spared)
    return evicted
