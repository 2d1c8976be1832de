"""lib/offload.py: under gevent a GIL-releasing call runs on another OS thread while other greenlets
go on; without gevent it is a plain call. The gevent case runs in a child process (monkey-patching
the test process would change every other test)."""

import subprocess
import sys
import threading

from lib.offload import off_the_loop
from tests.live import REPO_ROOT

UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import hashlib, threading, time, gevent
from lib.offload import off_the_loop

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


def test_without_gevent_it_is_a_plain_call_on_this_thread():
    assert off_the_loop(threading.get_native_id) == threading.get_native_id()


def test_under_gevent_it_runs_on_another_thread_while_other_greenlets_go_on():
    result = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr
