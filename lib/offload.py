"""Run a CPU-heavy call that releases the GIL on a real OS thread when the process runs gevent.

gunicorn's workers are gevent workers (lib/slow_clients.py): every request of a worker shares one OS
thread, so an Argon2 password check (tens of milliseconds, more on a busy host) would pause all of
them. On gevent's thread pool the calling greenlet waits while the others go on. Without gevent (the
Celery worker, manage.py, tests) it is a plain call. Only for calls that touch no Django state.

No Django imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gevent import get_hub, monkey

T = TypeVar("T")


def under_gevent() -> bool:
    return monkey.is_module_patched("threading")


def off_the_loop(function: Callable[..., T], *args) -> T:
    if under_gevent():
        return get_hub().threadpool.apply(function, args)
    return function(*args)


class InOrder:
    """Calls run on gevent's thread pool one after another, in order, each overlapping with what the
    caller does next (receiving the next chunk of a body while the previous one is hashed)."""

    def __init__(self) -> None:
        self.pool = get_hub().threadpool
        self.pending = None

    def call(self, function: Callable[..., object], *args) -> None:
        self.wait()
        self.pending = self.pool.spawn(function, *args)

    def wait(self) -> None:
        """Until the last call is done (its exception, if any, raised here)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.get()


def in_order_off_the_loop() -> InOrder | None:
    """An InOrder under gevent; None elsewhere, where a plain thread does the job."""
    return InOrder() if under_gevent() else None
