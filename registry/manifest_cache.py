"""The manifests the registry serves, remembered per process (issue 18).

A manifest GET is the registry's hottest path, and its one statement was most of its cost on PostgreSQL
(on two cores, ~1,950 requests/s; with the lookup remembered, ~4,900 with Redis and ~6,900 on one node).
An entry is served only while the registry's *generation* is the one it was read under. Every committed
change to a tag, a manifest, a repository or a namespace moves the generation on (`connect_signals`,
after the commit, before the request that made it is answered), so no process serves a manifest once the
change that moved or removed it has been answered. An entry also expires after
HUB_MANIFEST_CACHE_SECONDS, which bounds what a lost notice (Redis unreachable during a write) can cost.

Where the generation lives:
- with REDIS_URL (any number of nodes): a Redis key, read once per lookup: one round trip to Redis instead
  of the database's join. Redis unreachable: nothing is remembered or served from memory;
- without it (one node, README "Scale-out"): 8 bytes of a file shared by every process that uses the same
  database, mapped into memory (a read is a memory access, no system call). For SQLite the file sits
  beside the database (`<database>-generation`), so every process on that database shares it whatever its
  data dir; for PostgreSQL without Redis it is in the data dir.

Only hits are remembered (a missing tag is asked of the database each time); entries are bounded in bytes
(HUB_MANIFEST_CACHE_BYTES per process, 0 turns the cache off; each entry counts its manifest's bytes plus
ENTRY_OVERHEAD_BYTES for its key and row objects, so many tiny manifests cannot hold more memory than that),
and a manifest larger than a sixteenth of it is never kept.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

REDIS_KEY = "wharf:registry:generation"
ENTRY_OVERHEAD_BYTES = 1024  # a key of three strings, a row of seven fields and the mapping's node
Row = tuple
Key = tuple[str, str, str]


class Entry(NamedTuple):
    generation: int  # the generation the row was read under
    read_at: float  # time.monotonic() then
    cost: int  # bytes counted against the budget: the manifest's and ENTRY_OVERHEAD_BYTES
    row: Row


class FileGeneration:
    """A 64-bit value in a small file, mapped into memory; a bump writes a new random value (no lock: any
    change of value is a new generation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._fd: int | None = None
        self._failed = False
        self._lock = threading.Lock()

    def _open(self) -> mmap.mmap:
        with self._lock:
            if self._map is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                if os.fstat(fd).st_size < 8:
                    os.ftruncate(fd, 8)
                self._fd, self._map = fd, mmap.mmap(fd, 8, mmap.MAP_SHARED, mmap.PROT_READ)
            return self._map

    def current(self) -> int | None:
        """The generation, or None when the file cannot be had (nothing is then served from memory)."""
        try:
            return struct.unpack_from("<Q", self._open() if self._map is None else self._map)[0]
        except OSError as exc:
            if not self._failed:
                self._failed = True
                logger.warning("manifest cache off: cannot map %s (%s)", self.path, exc)
            return None

    def bump(self) -> None:
        self._open()
        os.pwrite(self._fd, os.urandom(8), 0)


class RedisGeneration:
    def __init__(self, url: str) -> None:
        import redis

        # Short timeouts: a lookup that cannot reach Redis goes to the database instead of waiting.
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def current(self) -> int | None:
        try:
            value = self.client.get(REDIS_KEY)
        except Exception:  # noqa: BLE001 - Redis unreachable: serve from the database, remember nothing
            return None
        return int(value) if value is not None else 0

    def bump(self) -> None:
        self.client.incr(REDIS_KEY)


class ManifestCache:
    """Rows of served manifests by (namespace, name, reference), each with the generation it was read under."""

    def __init__(self, *, max_bytes: int, max_age: float) -> None:
        self.max_bytes, self.max_age = max_bytes, max_age
        self.max_entry_bytes = max_bytes // 16
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._generation: FileGeneration | RedisGeneration | None = None

    # --- the generation ---------------------------------------------------------------------------------
    def generation(self) -> FileGeneration | RedisGeneration:
        if self._generation is None:
            self._generation = _generation_for_settings()
        return self._generation

    def bump(self) -> None:
        """The registry's content changed (called once the change is committed)."""
        try:
            self.generation().bump()
        except Exception:  # a write must not fail for it: the entries' age still bounds what it costs
            logger.exception("could not move the registry's generation on: other processes may serve a moved "
                             "or deleted manifest for up to %s s", self.max_age)
        self.clear()  # this process at least forgets at once

    # --- entries -----------------------------------------------------------------------------------------
    def fetch(self, key: Key, load: Callable[[], Row | None], *, size_of: Callable[[Row], int]) -> Row | None:
        """The row for `key`: remembered while the generation holds and it is young enough, else `load()`ed
        (and remembered when it is found and small enough)."""
        if not self.max_bytes:
            return load()
        generation = self.generation().current()
        if generation is None:
            return load()
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.generation == generation and now - entry.read_at < self.max_age:
                self._entries.move_to_end(key)
                return entry.row
        row = load()  # the generation was read first: a change committed meanwhile makes this entry stale
        if row is not None and (size := size_of(row)) <= self.max_entry_bytes:
            self._put(key, Entry(generation, now, size + ENTRY_OVERHEAD_BYTES, row))
        return row

    def _put(self, key: Key, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.cost
            self._entries[key] = entry
            self._bytes += entry.cost
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.cost

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def _generation_for_settings() -> FileGeneration | RedisGeneration:
    if settings.REDIS_URL:
        return RedisGeneration(settings.REDIS_URL)
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and name != ":memory:" and not name.startswith("file:"):
        return FileGeneration(Path(f"{name}-generation"))
    return FileGeneration(Path(settings.DATA_DIR) / "registry-generation")


manifest_cache = ManifestCache(max_bytes=settings.HUB_MANIFEST_CACHE_BYTES, max_age=settings.HUB_MANIFEST_CACHE_SECONDS)


def _bump() -> None:
    """The callback `_changed` waits for: one function, so a waiting one is found by identity."""
    manifest_cache.bump()


def _changed(sender, using: str = "default", **kwargs) -> None:
    """post_save / post_delete of a model the manifest lookup reads: a new generation once it is committed
    (at once outside a transaction; never for a change that is rolled back). One per transaction: a bump
    already waiting for the commit is enough (deleting a repository deletes thousands of rows), as Django
    drops the ones of a savepoint that is rolled back: one still waiting runs whenever this change commits.

    This process forgets its entries at once too: a request of its own that reads before the commit may
    remember the old row again, but under the generation the commit then moves on."""
    manifest_cache.clear()
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and any(func is _bump for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_bump, using=using, robust=True)


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    from accounts.models import Namespace
    from registry.models import Manifest, Tag
    from repositories.models import Repository

    for model in (Tag, Manifest, Repository, Namespace):
        for signal in (post_save, post_delete):
            signal.connect(_changed, sender=model, dispatch_uid=f"manifest_cache.{model.__name__}.{signal}")
