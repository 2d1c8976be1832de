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


def off_the_loop(function: Callable[..., T], *args) -> T:
    if monkey.is_module_patched("threading"):
        return get_hub().threadpool.apply(function, args)
    return function(*args)
