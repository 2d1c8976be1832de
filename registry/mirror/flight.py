"""One upstream fetch per blob, however many clients wait for it (README, "Pull-through cache").

`FlightLock(key)` is held by the request that fetches; the others wait until the blob is stored
(then serve it from the store) or the lock is free again (the fetch failed: one of them tries).

- With Redis (REDIS_URL), the lock is a Redis key (SET NX PX), so the whole cluster fetches once;
  the holder renews it while it streams and deletes it (only if still its own) at the end. A node
  that dies holding it lets it expire after LEASE_MS.
- Without Redis, an exclusive flock on a file under DATA_DIR/mirror-locks: every process of the
  node shares it, and the kernel releases it when its holder dies. The holder removes the file as it
  lets go (a holder that died leaves one empty file, taken over by the next fetch of that blob).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import secrets
import time
from pathlib import Path

from django.conf import settings

LEASE_MS = 30_000
RENEW_EVERY = 5.0
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
          "else return 0 end")


@functools.cache
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


class FlightLock:
    def __init__(self, key: str) -> None:
        self.name = hashlib.sha256(key.encode()).hexdigest()[:40]
        self.token = secrets.token_hex(12)
        self.held = False
        self._file: int | None = None
        self._path: Path | None = None
        self._renewed = 0.0

    def acquire(self) -> bool:
        """Take the lock if it is free (never waits)."""
        if settings.REDIS_URL:
            self.held = bool(_redis(settings.REDIS_URL).set(f"wharf:mirror:flight:{self.name}", self.token,
                                                            nx=True, px=LEASE_MS))
            self._renewed = time.monotonic()
            return self.held
        folder = Path(settings.DATA_DIR) / "mirror-locks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.lock"
        for _attempt in range(5):
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                return False
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle).st_ino:
                self._file, self._path, self.held = handle, path, True
                return True
            os.close(handle)  # its holder removed the file as it let go: the lock is the file there now
        return False

    def renew(self) -> None:
        """Keep a Redis lease alive while the fetch goes on (cheap: at most every few seconds)."""
        if not self.held or not settings.REDIS_URL or time.monotonic() - self._renewed < RENEW_EVERY:
            return
        self._renewed = time.monotonic()
        _redis(settings.REDIS_URL).eval(_RENEW, 1, f"wharf:mirror:flight:{self.name}", self.token, LEASE_MS)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._file is not None:
            # Removed while still held, so the folder keeps no file per blob ever fetched; whoever opened
            # it meanwhile sees, once it has the lock, that the path is no longer this file (acquire).
            self._path.unlink(missing_ok=True)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            os.close(self._file)
            self._file = None
        else:
            _redis(settings.REDIS_URL).eval(_RELEASE, 1, f"wharf:mirror:flight:{self.name}", self.token)
