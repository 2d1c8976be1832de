"""lib/offload.py: under gevent a GIL-releasing call runs on another OS thread while other greenlets
go on; without gevent it is a plain call. The gevent case runs in a child process (monkey-patching
the test process would change every other test)."""

import subprocess
import sys
import threading

from lib.offload import in_order_off_the_loop, off_the_loop
from tests.live import REPO_ROOT

UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import hashlib, threading, time, gevent
from lib.offload import in_order_off_the_loop, off_the_loop

ticks = []
def ticker():
    for _ in range(5):
        ticks.append(time.monotonic()); gevent.sleep(0.01)

def slow_hash():  # hashlib releases the GIL on large buffers, as argon2 does
    data = b"x" * (64 << 20)
    started = time.monotonic()
    for _ in range(4):
        hashlib.sha256(data).digest()
    return threading.get_native_id(), started, time.monotonic()

ticking = gevent.spawn(ticker)
gevent.sleep(0)
thread_id, started, ended = off_the_loop(slow_hash)
ticking.join()
during = [t for t in ticks if started < t < ended]
print(thread_id != threading.get_native_id(), len(during) >= 2)
"""

IN_ORDER_UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import hashlib
from lib.offload import in_order_off_the_loop

runner, hashed, expected = in_order_off_the_loop(), hashlib.sha256(), hashlib.sha256()
for i in range(64):
    chunk = bytes([i]) * (1 << 20)
    runner.call(hashed.update, chunk)
    expected.update(chunk)
runner.wait()
print(hashed.hexdigest() == expected.hexdigest())
"""


def test_without_gevent_it_is_a_plain_call_on_this_thread():
    assert off_the_loop(threading.get_native_id) == threading.get_native_id()


def test_under_gevent_it_runs_on_another_thread_while_other_greenlets_go_on():
    result = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr


def test_in_order_calls_need_gevent():
    assert in_order_off_the_loop() is None  # a plain thread does the job there


def test_in_order_calls_under_gevent_run_in_their_order():
    result = subprocess.run([sys.executable, "-c", IN_ORDER_UNDER_GEVENT], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["True"], result.stdout + result.stderr
