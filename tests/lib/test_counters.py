"""lib/counters.py: windowed counters shared by a machine's processes through a memory-mapped file."""

import multiprocessing

import pytest

from lib.counters import SLOTS_PER_BUCKET, FileCounters

pytestmark = [pytest.mark.sqlite]


def test_counts_within_a_window_then_starts_a_new_one(tmp_path):
    counters = FileCounters(tmp_path / "c.bin", buckets=16)
    assert counters.add("k", 60, now=1000).value == 1
    assert counters.add("k", 60, now=1030).value == 2
    assert counters.get("k", now=1059).value == 2
    assert counters.get("k", now=1060).value == 0  # the window ended
    restarted = counters.add("k", 60, now=1061)
    assert (restarted.value, restarted.resets_at) == (1, 1121)


def test_taking_back_never_goes_below_zero_or_starts_a_window(tmp_path):
    counters = FileCounters(tmp_path / "c.bin", buckets=16)
    assert counters.add("k", 60, -1, now=1000).value == 0
    assert counters.get("k", now=1000).value == 0
    counters.add("k", 60, now=1000)
    assert counters.add("k", 60, -1, now=1001).value == 0


def test_keys_are_counted_apart_and_survive_reopening(tmp_path):
    counters = FileCounters(tmp_path / "c.bin", buckets=4)
    for key in ("a", "b", "c"):
        for _ in range({"a": 1, "b": 2, "c": 3}[key]):
            counters.add(key, 3600, now=1000)
    counters.close()
    reopened = FileCounters(tmp_path / "c.bin", buckets=4)
    assert [reopened.get(key, now=1001).value for key in ("a", "b", "c")] == [1, 2, 3]


def test_a_full_bucket_evicts_the_lowest_count_only(tmp_path):
    counters = FileCounters(tmp_path / "c.bin", buckets=1)
    for _ in range(5):
        counters.add("busy", 3600, now=1000)
    for number in range(SLOTS_PER_BUCKET * 3):
        counters.add(f"once-{number}", 3600, now=1000)
    assert counters.get("busy", now=1001).value == 5


def _hammer(path: str, key: str, times: int) -> None:
    counters = FileCounters(path, buckets=64)
    for _ in range(times):
        counters.add(key, 3600)


def test_processes_never_lose_an_update(tmp_path):
    path = str(tmp_path / "c.bin")
    FileCounters(path, buckets=64)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_hammer, args=(path, "shared", 400)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert FileCounters(path, buckets=64).get("shared").value == 1600
