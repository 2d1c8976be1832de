"""Windowed counters every process of one machine shares, in a memory-mapped file: no database write,
no server, and they survive a restart (the file stays; the kernel writes it back).

The embedded setup's store for rate limits (registry/ratelimits.py); with Redis, the counters live
there and every node shares them. The file is a fixed table of buckets of slots; a slot holds a key's
digest, the end of its window and its count. A key hashes to one bucket, and every change holds an
fcntl lock on that bucket's bytes, so two processes (or two threads) never both take the last unit
of a budget. A full bucket gives up its slot with the lowest count: whoever it belonged to starts
a new window with a clean count (the eviction can only ever favour a client, never refuse one).

No Django imports.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SLOT = struct.Struct("<16sdq")  # key digest, window end (Unix time), count
SLOTS_PER_BUCKET = 8
BUCKET_BYTES = SLOT.size * SLOTS_PER_BUCKET
EMPTY = bytes(16)


@dataclass(frozen=True)
class Count:
    """A key's count in its window and when that window ends (Unix time)."""

    value: int
    resets_at: float


class FileCounters:
    def __init__(self, path: Path | str, buckets: int = 8192) -> None:
        self.path = Path(path)
        self.buckets = buckets
        size = buckets * BUCKET_BYTES
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size != size:
                with _locked(fd, 0, 0):  # the whole file: one process sizes it
                    if os.fstat(fd).st_size != size:
                        os.ftruncate(fd, size)  # a new file, or one made with another table size: start empty
            self.map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._thread_lock = threading.Lock()  # fcntl locks are per process: threads take turns here

    def add(self, key: str, window_seconds: float, amount: int = 1, now: float | None = None) -> Count:
        """Add `amount` (may be negative) to `key`'s count, starting a window of `window_seconds` if it
        has none running; returns the new count. A negative amount never starts a window."""
        now = time.time() if now is None else now
        digest, start = self._locate(key)
        with self._thread_lock, _locked(self.fd, start, BUCKET_BYTES):
            slot, value, resets_at = self._find(start, digest, now)
            if value == 0 and amount <= 0:
                return Count(0, now)
            if resets_at <= now:
                resets_at, value = now + window_seconds, 0
            value = max(0, value + amount)
            SLOT.pack_into(self.map, slot, digest, resets_at, value)
            return Count(value, resets_at)

    def get(self, key: str, now: float | None = None) -> Count:
        now = time.time() if now is None else now
        digest, start = self._locate(key)
        with self._thread_lock, _locked(self.fd, start, BUCKET_BYTES):
            _, value, resets_at = self._find(start, digest, now)
        return Count(value, resets_at) if resets_at > now else Count(0, now)

    def _locate(self, key: str) -> tuple[bytes, int]:
        """`key`'s digest and the offset of the bucket it hashes to."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        return digest, (int.from_bytes(digest[:8], "little") % self.buckets) * BUCKET_BYTES

    def _find(self, start: int, digest: bytes, now: float) -> tuple[int, int, float]:
        """The slot for `digest` in the bucket at `start` (its own, else a free or expired one, else the
        one with the lowest count), with the count and window end it holds for `digest` (0 when new)."""
        spare, spare_rank = start, None
        for offset in range(start, start + BUCKET_BYTES, SLOT.size):
            held, resets_at, value = SLOT.unpack_from(self.map, offset)
            if held == digest:
                return offset, (value if resets_at > now else 0), resets_at
            rank = (0, 0) if held == EMPTY or resets_at <= now else (1, value)
            if spare_rank is None or rank < spare_rank:
                spare, spare_rank = offset, rank
        return spare, 0, 0.0

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class _locked:
    """An exclusive fcntl lock on `length` bytes of `fd` from `start` (0 bytes: the whole file)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd, self.start, self.length = fd, start, length

    def __enter__(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX, self.length, self.start)

    def __exit__(self, *exc) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, self.length, self.start)
