"""Pull statistics, counted as Docker Hub counts them, buffered off the hot path.

A manifest GET is a pull (HEAD is not); an index GET followed by its child manifest GET by the
same client is one pull. The request only adds to an in-memory sum of its process (no round trip: a
Redis HINCRBY per GET was a quarter of a manifest GET's time on PostgreSQL and Redis), which a
background thread writes every few seconds (PULL_BUFFER_WRITE_SECONDS) and at exit: to a Redis hash
when Redis is configured (one pipelined round trip for all of them), otherwise as PendingPull rows.
`flush_pull_counters()` (a periodic task, every 30 s) moves the counts into PullStat,
Repository.pull_count and the last-pulled times, this process's buffer first.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import hashlib
import logging
import os
import threading
import time
from collections import defaultdict

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.throttles import client_address
from lib.metrics import PULLS
from oci import mediatypes
from oci.names import is_attachment_tag
from registry.models import Manifest, PendingPull, Tag
from repositories.models import PullStat, Repository

logger = logging.getLogger(__name__)
REDIS_KEY = "wharf:pulls"
INDEX_WINDOW_SECONDS = 120


@functools.cache
def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


def _client_key(request: HttpRequest, repository_id: int) -> str:
    who = f"{client_address(request)}|{request.META.get('HTTP_AUTHORIZATION', '')[:80]}"
    return "pull-index:" + hashlib.sha256(f"{who}|{repository_id}".encode()).hexdigest()[:32]


def is_pull(*, request: HttpRequest, repository_id: int, reference: str, manifest: Manifest) -> bool:
    """Whether this manifest GET counts as a pull (the rate limit asks too, before it is served)."""
    if manifest.subject_digest or is_attachment_tag(reference):
        return False  # signatures, SBOMs and other attachments are not pulls
    key = _client_key(request, repository_id)
    if manifest.media_type in mediatypes.INDEX_TYPES:
        cache.set(key, [p.get("digest") for p in manifest.platforms], INDEX_WINDOW_SECONDS)
    elif ":" in reference:
        children = cache.get(key)
        if children and reference in children:
            return False  # the child of an index this client just pulled: already counted
    return True


def record_pull(*, repository_id: int, reference: str) -> None:
    tag = "" if ":" in reference else reference
    _buffer_add(repository_id, tag, timezone.now())


class LocalPullBuffer:
    """Pulls counted in this process's memory, written to PendingPull by a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[int, str, dt.date], int] = defaultdict(int)
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, key: tuple[int, str, dt.date]) -> None:
        with self.lock:
            self.counts[key] += 1
            if self.thread is None or self.pid != os.getpid():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, name="pull-buffer", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(settings.PULL_BUFFER_WRITE_SECONDS)
            try:
                self.write()
            except Exception:
                logger.exception("could not write buffered pulls")
            finally:
                connection.close()

    def write(self) -> int:
        with self.lock:
            counts, self.counts = self.counts, defaultdict(int)
        if not counts:
            return 0
        try:
            if settings.REDIS_URL:
                pipe = _redis().pipeline(transaction=False)
                for (repository_id, tag, day), count in counts.items():
                    pipe.hincrby(REDIS_KEY, f"{repository_id}|{tag}|{day.isoformat()}", count)
                pipe.execute()
            else:
                PendingPull.objects.bulk_create([
                    PendingPull(repository_id=repository_id, tag=tag, day=day, count=count)
                    for (repository_id, tag, day), count in counts.items()
                ])
        except Exception:
            with self.lock:  # put them back for the next attempt
                for key, count in counts.items():
                    self.counts[key] += count
            raise
        return sum(counts.values())


local_buffer = LocalPullBuffer()


@atexit.register
def _write_on_exit() -> None:
    if local_buffer.counts:
        try:
            local_buffer.write()
        except Exception:  # noqa: BLE001 - the process is ending; say what was lost
            logger.warning("lost %d buffered pulls at exit", sum(local_buffer.counts.values()))


def _buffer_add(repository_id: int, tag: str, when: dt.datetime) -> None:
    PULLS.inc()
    local_buffer.add((repository_id, tag, when.date()))


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
        local_buffer.write()  # this process's pulls (other processes write theirs every few seconds)
        counts = _drain_redis()
        with transaction.atomic():
            _apply(counts, now)
        _redis().delete(f"{REDIS_KEY}:flushing")
        return sum(counts.values())
    local_buffer.write()  # this process's pulls (other processes write theirs every few seconds)
    counts = defaultdict(int)
    with transaction.atomic():
        pending = list(PendingPull.objects.order_by("pk").values_list("pk", "repository_id", "tag", "day", "count")
                       [:100_000])
        for _, repository_id, tag, day, count in pending:
            counts[(repository_id, tag, day)] += count
        PendingPull.objects.filter(pk__in=[row[0] for row in pending]).delete()
        _apply(counts, now)
    return sum(counts.values())
