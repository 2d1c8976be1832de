"""Pull statistics, counted as Docker Hub counts them, buffered off the hot path.

A manifest GET is a pull (HEAD is not); an index GET followed by its child manifest GET by the
same client is one pull. The request only adds to a buffer (a Redis hash, or PendingPull rows in
the embedded default); `flush_pull_counters()` (a periodic task, every 30 s) moves the counts
into PullStat, Repository.pull_count and the last-pulled times.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from registry.models import Manifest, PendingPull, Tag
from registry.oci import mediatypes
from registry.oci.names import is_attachment_tag
from repositories.models import PullStat, Repository

REDIS_KEY = "wharf:pulls"
INDEX_WINDOW_SECONDS = 120


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _client_key(request: HttpRequest, repository_id: int) -> str:
    who = f"{request.META.get('REMOTE_ADDR', '')}|{request.META.get('HTTP_AUTHORIZATION', '')[:80]}"
    return "pull-index:" + hashlib.sha256(f"{who}|{repository_id}".encode()).hexdigest()[:32]


def record_manifest_get(*, request: HttpRequest, repository: Repository, reference: str, manifest: Manifest) -> None:
    if manifest.subject_digest or is_attachment_tag(reference):
        return  # signatures, SBOMs and other attachments are not pulls
    key = _client_key(request, repository.pk)
    if manifest.media_type in mediatypes.INDEX_TYPES:
        cache.set(key, [p.get("digest") for p in manifest.platforms], INDEX_WINDOW_SECONDS)
    elif ":" in reference:
        children = cache.get(key)
        if children and reference in children:
            return  # the child of an index this client just pulled: already counted
    tag = "" if ":" in reference else reference
    _buffer_add(repository.pk, tag, timezone.now())


def _buffer_add(repository_id: int, tag: str, when: dt.datetime) -> None:
    day = when.date().isoformat()
    if settings.REDIS_URL:
        _redis().hincrby(REDIS_KEY, f"{repository_id}|{tag}|{day}", 1)
    else:
        PendingPull.objects.create(repository_id=repository_id, tag=tag, day=when.date(), pulled_at=when)


def _drain_redis() -> dict[tuple[int, str, dt.date], int]:
    """Atomically take the buffered counts (a crashed flush is picked up by the next one)."""
    client = _redis()
    processing = f"{REDIS_KEY}:flushing"
    if not client.exists(processing) and client.exists(REDIS_KEY):
        client.rename(REDIS_KEY, processing)
    counts: dict[tuple[int, str, dt.date], int] = defaultdict(int)
    for field, value in client.hgetall(processing).items():
        repository_id, tag, day = field.decode().split("|", 2)
        counts[(int(repository_id), tag, dt.date.fromisoformat(day))] += int(value)
    return counts


def _apply(counts: dict[tuple[int, str, dt.date], int], now: dt.datetime) -> None:
    existing = set(Repository.objects.filter(pk__in={key[0] for key in counts}).values_list("pk", flat=True))
    totals: dict[int, int] = defaultdict(int)
    for (repository_id, tag, day), count in counts.items():
        if repository_id not in existing:
            continue  # deleted since
        for stat_tag in {tag, ""}:
            updated = PullStat.objects.filter(repository_id=repository_id, tag=stat_tag, day=day).update(
                count=F("count") + count
            )
            if not updated:
                PullStat.objects.create(repository_id=repository_id, tag=stat_tag, day=day, count=count)
        totals[repository_id] += count
        if tag:
            Tag.objects.filter(repository_id=repository_id, name=tag).update(last_pulled_at=now)
    for repository_id, count in totals.items():
        Repository.objects.filter(pk=repository_id).update(pull_count=F("pull_count") + count, last_pulled_at=now)


def flush_pull_counters() -> int:
    """Move buffered pulls into the statistics. Returns how many pulls were applied."""
    now = timezone.now()
    if settings.REDIS_URL:
        counts = _drain_redis()
        with transaction.atomic():
            _apply(counts, now)
        _redis().delete(f"{REDIS_KEY}:flushing")
        return sum(counts.values())
    counts = defaultdict(int)
    with transaction.atomic():
        pending = list(PendingPull.objects.order_by("pk").values_list("pk", "repository_id", "tag", "day")[:100_000])
        for _, repository_id, tag, day in pending:
            counts[(repository_id, tag, day)] += 1
        PendingPull.objects.filter(pk__in=[row[0] for row in pending]).delete()
        _apply(counts, now)
    return sum(counts.values())
