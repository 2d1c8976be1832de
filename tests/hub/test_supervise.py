"""serve's supervision loop (hub/supervise.py) with real child processes and a clock the test moves:
a child that dies is restarted after 1 s, 2, 4, … up to 30 s, back to 1 s after a minute of running,
each exit logged with its status, and never once a stop was asked."""

from __future__ import annotations

import io
import re
import sys

from hub.supervise import Child, Supervisor
from tests.live import REPO_ROOT


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(*commands: str) -> tuple[Supervisor, Clock, io.StringIO]:
    clock, log = Clock(), io.StringIO()
    children = [Child(f"child{number}", [sys.executable, "-c", code], {}) for number, code in enumerate(commands)]
    return Supervisor(children, cwd=REPO_ROOT, log=log, clock=clock), clock, log


def crash_and_notice(sup: Supervisor, clock: Clock, ran_for: float) -> None:
    """The child runs `ran_for` seconds (of the test's clock), exits, and serve notices."""
    [child] = sup.children
    child.process.wait(10)
    clock.now += ran_for
    sup.watch()


def restart_when_due(sup: Supervisor, clock: Clock) -> None:
    [child] = sup.children
    clock.now = child.restart_at
    sup.watch()


def test_a_dying_child_is_restarted_with_a_doubling_delay_up_to_30_s():
    sup, clock, log = supervisor("raise SystemExit(3)")
    sup.start(sup.children[0])
    for _ in range(8):
        crash_and_notice(sup, clock, ran_for=0.1)
        restart_when_due(sup, clock)
    delays = [float(delay) for delay in re.findall(r"restarting it in ([\d.]+) s", log.getvalue())]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert "child0 (pid " in log.getvalue() and "exited with status 3" in log.getvalue()
    assert sup.children[0].restarts == 8


def test_the_delay_starts_over_after_a_minute_of_running():
    sup, clock, log = supervisor("raise SystemExit(1)")
    sup.start(sup.children[0])
    for _ in range(4):
        crash_and_notice(sup, clock, ran_for=0.1)
        restart_when_due(sup, clock)
    crash_and_notice(sup, clock, ran_for=61)
    assert re.findall(r"restarting it in ([\d.]+) s", log.getvalue())[-1] == "1"


def test_a_child_is_not_restarted_before_its_delay():
    sup, clock, log = supervisor("raise SystemExit(2)")
    sup.start(sup.children[0])
    crash_and_notice(sup, clock, ran_for=0.1)
    first = sup.children[0].process
    clock.now += 0.9
    sup.watch()
    assert sup.children[0].process is first and "restarted" not in log.getvalue()


def test_a_child_killed_by_a_signal_is_logged_with_the_signal():
    sup, clock, log = supervisor("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    sup.start(sup.children[0])
    crash_and_notice(sup, clock, ran_for=0.1)
    assert "exited with signal SIGKILL; restarting it in 1 s" in log.getvalue()


def test_nothing_is_restarted_once_a_stop_was_asked():
    sup, clock, log = supervisor("raise SystemExit(0)")
    sup.start(sup.children[0])
    sup.children[0].process.wait(10)
    sup.request_stop()
    clock.now += 120
    sup.watch()
    assert log.getvalue() == "" and sup.children[0].restarts == 0
