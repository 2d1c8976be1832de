"""Append-only live build logs, read with `?start=N`; archived to STORAGES["build-logs"] at the end.

A Redis list per build when REDIS_URL is set (Quay `data/buildlogs.py`), else rows in the database
(the embedded default: any process that shares the database can read and write the log).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages

MAX_LINE = 8000
REDIS_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class LogChunk:
    lines: list[str]
    next_start: int


class LiveLogStore(Protocol):
    def append(self, build_id: int, lines: list[str]) -> None: ...
    def read(self, build_id: int, start: int = 0) -> list[str]: ...
    def drop(self, build_id: int) -> None: ...


class DatabaseLogStore:
    def append(self, build_id: int, lines: list[str]) -> None:
        from builds.models import BuildLogLine

        BuildLogLine.objects.bulk_create([BuildLogLine(build_id=build_id, text=line) for line in lines])

    def read(self, build_id: int, start: int = 0) -> list[str]:
        from builds.models import BuildLogLine

        return list(BuildLogLine.objects.filter(build_id=build_id).order_by("id")
                    .values_list("text", flat=True)[start:])

    def drop(self, build_id: int) -> None:
        from builds.models import BuildLogLine

        BuildLogLine.objects.filter(build_id=build_id).delete()


class RedisLogStore:
    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)

    @staticmethod
    def key(build_id: int) -> str:
        return f"wharf:build-log:{build_id}"

    def append(self, build_id: int, lines: list[str]) -> None:
        pipe = self.client.pipeline()
        pipe.rpush(self.key(build_id), *lines)
        pipe.expire(self.key(build_id), REDIS_TTL_SECONDS)
        pipe.execute()

    def read(self, build_id: int, start: int = 0) -> list[str]:
        return [item.decode(errors="replace") for item in self.client.lrange(self.key(build_id), start, -1)]

    def drop(self, build_id: int) -> None:
        self.client.delete(self.key(build_id))


@functools.cache
def _store_for(redis_url: str) -> LiveLogStore:
    return RedisLogStore(redis_url) if redis_url else DatabaseLogStore()


def live_store() -> LiveLogStore:
    return _store_for(settings.REDIS_URL or "")


def log_append(build_id: int, *lines: str) -> None:
    cleaned = [line.rstrip("\n")[:MAX_LINE] for text in lines for line in (text.splitlines() or [""])]
    if cleaned:
        live_store().append(build_id, cleaned)


def _archive_storage():
    return storages["build-logs"]


def log_read(build, start: int = 0) -> LogChunk:
    """Lines from `start` on: from the live store while the build runs, from the archive after."""
    start = max(0, int(start))
    if build.log_archived:
        storage = _archive_storage()
        try:
            with storage.open(build.log_name, "rb") as handle:
                lines = handle.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            lines = ["(the archived log is missing)"]
        tail = lines[start:]
    else:
        tail = live_store().read(build.pk, start)
    return LogChunk(lines=tail, next_start=start + len(tail))


def log_text(build) -> str:
    return "\n".join(log_read(build).lines)


def log_archive(build) -> None:
    """Write the whole live log to the build-logs storage and drop the live list."""
    store = live_store()
    lines = store.read(build.pk, 0)
    storage = _archive_storage()
    if storage.exists(build.log_name):
        storage.delete(build.log_name)
    storage.save(build.log_name, ContentFile(("\n".join(lines) + "\n").encode()))
    type(build).objects.filter(pk=build.pk).update(log_archived=True)
    build.log_archived = True
    store.drop(build.pk)
