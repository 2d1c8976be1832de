"""One beat per cluster: only the beat holding the lease sends periodic tasks (hub/beat.py)."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from hub.beat import lease_hold, lease_release
from tests.hub.support import hub_env
from tests.live import BIN, REPO_ROOT, wait_until

SENT = "Sending due task sweep-webhook-deliveries"


@pytest.mark.django_db
def test_the_first_beat_takes_the_lease():
    assert lease_hold("a", 30)


@pytest.mark.django_db
def test_a_second_beat_is_refused_while_the_lease_runs():
    lease_hold("a", 30)
    assert not lease_hold("b", 30)


@pytest.mark.django_db
def test_the_holder_renews_its_lease():
    now = timezone.now()
    lease_hold("a", 30, now=now)
    assert lease_hold("a", 30, now=now + timedelta(seconds=20))
    assert not lease_hold("b", 30, now=now + timedelta(seconds=40))  # renewed at 20 s: runs until 50 s


@pytest.mark.django_db
def test_another_beat_takes_an_expired_lease_and_the_old_holder_then_sends_nothing():
    now = timezone.now()
    lease_hold("a", 30, now=now)
    assert lease_hold("b", 30, now=now + timedelta(seconds=31))
    assert not lease_hold("a", 30, now=now + timedelta(seconds=32))


@pytest.mark.django_db
def test_a_released_lease_is_taken_at_once():
    lease_hold("a", 30)
    lease_release("a")
    assert lease_hold("b", 30)


@pytest.mark.django_db
def test_only_the_holder_releases():
    lease_hold("a", 30)
    lease_release("b")
    assert not lease_hold("b", 30)


def start_beat(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, Path]:
    folder.mkdir()
    log = folder / "beat.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "hub", "beat", "--loglevel", "INFO", "--schedule", str(folder / "schedule")],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    return process, log


def sends(log: Path) -> int:
    return log.read_text(errors="replace").count(SENT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def beat_env(data_dir):
    """Beats on one database (a private SQLite data dir) sending the webhook sweep every second."""
    return hub_env(data_dir, HUB_WEBHOOK_SWEEP_SECONDS="1", HUB_BEAT_LEASE_SECONDS="3")


@pytest.mark.e2e
def test_two_beats_started_by_mistake_send_each_task_once(beat_env, tmp_path):
    # A 10 s lease (renewed every 3.3 s): a holder delayed past a 3 s lease by a loaded CI host hands over
    # legitimately, which is the other test's subject, not this one's.
    env = {**beat_env, "HUB_BEAT_LEASE_SECONDS": "10"}
    (first, first_log), (second, second_log) = (start_beat(env, tmp_path / name) for name in ("a", "b"))
    try:
        wait_until(lambda: sends(first_log) + sends(second_log) >= 6, timeout=60,
                   message="six sends of the one-second task")
    finally:
        stop(first)
        stop(second)
    counts = sorted([sends(first_log), sends(second_log)])
    assert counts[0] == 0, f"both beats sent the task: {counts}"


@pytest.mark.e2e
def test_a_standby_beat_takes_over_when_the_sending_one_dies(beat_env, tmp_path):
    first, first_log = start_beat(beat_env, tmp_path / "a")
    second = None
    try:
        wait_until(lambda: sends(first_log) >= 1, timeout=60, message="the first beat to send")
        second, second_log = start_beat(beat_env, tmp_path / "b")
        time.sleep(4)  # longer than the lease: the first renews it, the second only waits
        assert sends(second_log) == 0
        first.kill()  # no chance to give the lease back
        first.wait()
        died = time.monotonic()
        wait_until(lambda: sends(second_log) >= 1, timeout=30, message="the standby beat to send")
        assert time.monotonic() - died < 3 + 3 + 5  # the lease, a standby's retry interval, and start-up slack
    finally:
        stop(first)
        if second is not None:
            stop(second)


@pytest.mark.django_db
def test_beats_of_different_brokers_hold_leases_of_their_own():
    """The lease is the broker's: hubs sharing a database but not a broker each keep their schedule."""
    from hub.beat import lease_name

    one, two = lease_name("redis://r:6379/2"), lease_name("redis://r:6379/3")
    folders = {lease_name("wharf-fs://", "/a/celery/queue"), lease_name("wharf-fs://", "/b/celery/queue")}
    assert len({one, two, *folders}) == 4
    assert lease_name("redis://r:6379/2") == one and len(one) <= 64
    assert lease_hold("a", 30, name=one)
    assert lease_hold("b", 30, name=two)
    assert not lease_hold("b", 30, name=one)
