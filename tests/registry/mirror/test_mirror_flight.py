"""One upstream fetch per blob: the single-flight lock (registry/mirror/flight.py) is per cluster with
Redis (a leased key every node sees) and per node without it (a file lock every process shares)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from registry.mirror import flight
from registry.mirror.flight import FlightLock


@pytest.mark.sqlite  # the embedded defaults use this one
def test_without_redis_every_process_of_the_node_shares_the_lock(settings, tmp_path):
    settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path
    first, second = FlightLock("blob:one"), FlightLock("blob:one")
    assert first.acquire() and not second.acquire()
    other = FlightLock("blob:two")
    assert other.acquire()  # another key is another lock
    other.release()
    first.release()
    assert second.acquire()
    second.release()

    # Another process (another gunicorn worker) holding it: this one waits; when it dies, the kernel frees it.
    path = Path(tmp_path) / "mirror-locks" / f"{FlightLock('blob:one').name}.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; f = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not FlightLock("blob:one").acquire()
    finally:
        holder.kill()
        holder.wait(10)
    freed = FlightLock("blob:one")
    assert freed.acquire()
    freed.release()


@pytest.mark.sqlite
def test_without_redis_no_lock_file_is_left_per_blob(settings, tmp_path):
    """The holder removes its file as it lets go, so the folder does not keep one file per blob ever fetched."""
    settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path
    for number in range(20):
        lock = FlightLock(f"blob:{number}")
        assert lock.acquire()
        lock.release()
    assert list((Path(tmp_path) / "mirror-locks").iterdir()) == []


@pytest.mark.sqlite
def test_without_redis_a_lock_on_a_removed_file_is_not_taken_for_the_lock(settings, tmp_path, monkeypatch):
    """A request that opened the file just before its holder removed it, and then got the flock on that old
    file, must not hold the lock beside the one that made the new file: it takes the file there now."""
    settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path
    first = FlightLock("blob:one")
    assert first.acquire()
    path = Path(tmp_path) / "mirror-locks" / f"{first.name}.lock"
    stale = flight.os.open(path, flight.os.O_RDWR)  # a second request opens the file before the release
    first.release()
    assert not path.exists()
    newcomer = FlightLock("blob:one")
    assert newcomer.acquire()  # makes the file anew

    opened = iter([stale])
    real_open = flight.os.open
    monkeypatch.setattr(flight.os, "open", lambda *args, **kwargs: next(opened, None) or real_open(*args, **kwargs))
    late = FlightLock("blob:one")
    assert not late.acquire()  # the old file's flock is free, but the path is the newcomer's file: held
    newcomer.release()


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (the PostgreSQL+Redis run has it)")
def test_with_redis_the_cluster_shares_a_leased_lock(monkeypatch):
    key = f"blob:{time.time_ns()}"  # nodes are separate FlightLock objects on one Redis: as here
    first, second = FlightLock(key), FlightLock(key)
    assert first.acquire() and not second.acquire()
    first.release()
    assert second.acquire()
    second.release()

    # A node that dies holding it lets the lease run out; its late release never frees the next holder's.
    monkeypatch.setattr(flight, "LEASE_MS", 600)
    dead = FlightLock(key)
    assert dead.acquire()
    time.sleep(0.8)
    taker = FlightLock(key)
    assert taker.acquire()
    dead.release()
    assert not FlightLock(key).acquire()

    # The holder renews its lease while it streams: it outlives LEASE_MS.
    monkeypatch.setattr(flight, "RENEW_EVERY", 0.0)
    for _ in range(5):
        time.sleep(0.2)
        taker.renew()
    assert not FlightLock(key).acquire()
    taker.release()
    last = FlightLock(key)
    assert last.acquire()
    last.release()
