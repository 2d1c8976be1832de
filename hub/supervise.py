"""The supervision loop of `manage.py serve`: start the children, restart one that dies (with backoff,
logged), and stop them all within STOP_DEADLINE seconds when asked.

A child that exits while no stop was asked is started again after 1 s, then 2, 4, … up to 30 s while
it keeps dying; a child that ran for a minute starts over at 1 s. Each exit is logged on stderr with
its status.

Stopping (SIGTERM or SIGINT to serve, or a TERM to the whole process group, which also reaches every
child and grandchild directly): every child gets SIGTERM (gunicorn stops gracefully within its
graceful_timeout; a Celery worker, started with REMAP_SIGTERM=SIGQUIT, gives running tasks
worker_soft_shutdown_timeout and cancels them, and puts the messages it had not started back in the
queue: that is all of its shutdown, and a second SIGQUIT would only interrupt it with a traceback
while Python exits); after KILL_AFTER seconds whatever is left of serve's descendants gets SIGKILL.
serve is a child subreaper, so processes whose parent exited first (a pool process, beat, a build's
buildah) are still its descendants and are stopped too. Then serve exits 0.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long before dying is restarted after FIRST_DELAY again
KILL_AFTER = 7.5  # SIGKILL to every descendant still running
STOP_DEADLINE = 10.0  # the promise: everything is gone by then
POLL_SECONDS = 0.2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value)
    except (OSError, AttributeError):
        pass  # not Linux: no subreaper, no parent-death signal


def die_with_parent() -> None:
    """In the child: get SIGTERM if `serve` itself dies (even by SIGKILL), so no server outlives it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


def _children_by_parent() -> dict[int, list[int]]:
    """Living processes (from /proc; none where there is no /proc) by the PID of their parent."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for name in entries:
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    return children


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [argument.decode(errors="replace") for argument in raw.split(b"\0")[:-1]]


def descendants(root: int) -> list[int]:
    """PIDs of every living process below `root`."""
    children = _children_by_parent()
    found, pending = [], [root]
    while pending:
        for pid in children.get(pending.pop(), []):
            found.append(pid)
            pending.append(pid)
    return found


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float = FIRST_DELAY
    restart_at: float | None = None
    restarts: int = 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass


@dataclass
class Supervisor:
    children: list[Child]
    cwd: Path
    log: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    stopping: bool = False

    def say(self, text: str) -> None:
        self.log.write(f"serve: {text}\n")
        self.log.flush()

    def request_stop(self, signum=None, frame=None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Supervise until asked to stop; returns serve's exit status."""
        # Handlers first: a SIGTERM that arrives while the children start must still stop them.
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            for child in self.children:
                if self.stopping:
                    break
                self.start(child)
            while not self.stopping:
                self.watch()
                # Only in serve itself (a subreaper): any other child of this process is a stray.
                self.reap_orphans()
                self.kill_strays()
                time.sleep(POLL_SECONDS)
        finally:
            self.stop()
        return 0

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, cwd=self.cwd, env=child.env, preexec_fn=die_with_parent)
        child.started_at = self.clock()
        child.restart_at = None

    def watch(self) -> None:
        """Schedule the restart of children that exited; start those whose delay is over."""
        now = self.clock()
        for child in self.children:
            if self.stopping:
                return
            if child.process is None or child.running():
                continue
            if child.restart_at is None:
                if now - child.started_at >= HEALTHY_AFTER:
                    child.delay = FIRST_DELAY
                child.restart_at = now + child.delay
                self.say(f"{child.name} (pid {child.process.pid}) exited with "
                         f"{describe_status(child.process.returncode)}; restarting it in {child.delay:g} s")
                child.delay = min(child.delay * 2, MAX_DELAY)
            elif now >= child.restart_at:
                child.restarts += 1
                self.start(child)
                self.say(f"{child.name} restarted (pid {child.process.pid}, restart {child.restarts})")

    def kill_strays(self) -> None:
        """Processes left by a child that died (a pool process, beat, a gunicorn worker: forks that run
        the child's own command line) came to serve, the subreaper: they would go on beside the
        restarted child, so they are killed. Any other process that came to serve is left alone."""
        ours = {child.process.pid for child in self.children if child.process is not None}
        commands = [child.command for child in self.children]
        for pid in _children_by_parent().get(os.getpid(), []):
            if pid in ours:
                continue
            arguments = _command_line(pid)
            if not any(arguments in (command, [*arguments[:1], *command]) for command in commands):
                continue
            self.say(f"killing process {pid}, left behind by a child that exited")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap_orphans(self) -> None:
        """Collect processes that became serve's children when their parent died (serve is a subreaper);
        a child serve started is collected by its Popen, which keeps its status."""
        for _ in range(1000):
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            owner = next((child.process for child in self.children if child.process is not None
                          and child.process.pid == info.si_pid and child.process.returncode is None), None)
            try:
                if owner is not None:
                    owner.poll()
                else:
                    os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def stop(self) -> None:
        """TERM every child, KILL what is left after KILL_AFTER."""
        self.stopping = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        began = self.clock()
        for child in self.children:
            child.signal(signal.SIGTERM)
        while self.clock() - began < KILL_AFTER:
            self.reap_orphans()
            if not any(child.running() for child in self.children) and not descendants(os.getpid()):
                self.say(f"stopped in {self.clock() - began:.1f} s")
                return
            time.sleep(0.05)
        left = descendants(os.getpid())
        self.say(f"still running {KILL_AFTER:g} s after the stop began: killing {len(left)} process(es)")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in self.children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=max(0.1, began + STOP_DEADLINE - 0.5 - self.clock()))
                except subprocess.TimeoutExpired:
                    pass
        self.reap_orphans()
        self.say(f"stopped in {self.clock() - began:.1f} s")
