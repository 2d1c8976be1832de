"""gunicorn settings for Wharf. Environment: HUB_BIND, PORT, HUB_WEB_WORKERS, HUB_WEB_WORKER, HUB_WEB_THREADS,
HUB_HEADER_TIMEOUT, HUB_BODY_IDLE_TIMEOUT, HUB_MAX_STALLED_PER_ADDRESS, HUB_BEHIND_PROXY."""

import multiprocessing
import os
from pathlib import Path

bind = f"{os.environ.get('HUB_BIND', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"


def _seconds(name: str, default: float) -> float:
    value = float(os.environ.get(name) or default)
    if value <= 0:
        raise ValueError(f"{name}={value}: expected a positive number of seconds")
    return value


def _behind_proxy() -> bool:
    raw = (os.environ.get("HUB_BEHIND_PROXY") or "false").strip().lower()
    if raw not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError(f"HUB_BEHIND_PROXY={raw!r}: expected true or false")
    return raw in {"1", "true", "yes", "on"}


# Slow clients: each connection is a greenlet (lib/slow_clients.py), so a client that sends slowly costs
# a socket, not a thread, and every wait for its bytes is bounded (README, "Slow clients").
worker_class = {"gevent": "lib.slow_clients.SlowClientWorker", "gthread": "gthread"}[
    os.environ.get("HUB_WEB_WORKER") or "gevent"]
workers = int(os.environ.get("HUB_WEB_WORKERS") or min(4, multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("HUB_WEB_THREADS") or 8)  # gthread only
worker_connections = 1000
# Read here, so a bad value stops gunicorn at once; handed to each worker in post_fork.
client_limits = {
    "header_timeout": _seconds("HUB_HEADER_TIMEOUT", 20),
    "body_idle_timeout": _seconds("HUB_BODY_IDLE_TIMEOUT", 60),
    # Behind a proxy every client has the proxy's address: the proxy's own timeouts bound them there.
    "max_stalled_per_address": 0 if _behind_proxy() else int(os.environ.get("HUB_MAX_STALLED_PER_ADDRESS") or 32),
}
# Blob uploads of several GiB over slow links: a request may be served for a long time.
timeout = int(os.environ.get("HUB_WEB_TIMEOUT") or 3600)
# On stop, requests still running get this long; `manage.py serve` stops everything within 10 s.
graceful_timeout = 5
keepalive = 75
# No request-size limit of gunicorn's own: blobs stream through Django in fixed chunks.
limit_request_line = 8190
limit_request_field_size = 16380
forwarded_allow_ips = os.environ.get("HUB_FORWARDED_ALLOW_IPS") or ("127.0.0.1,::1" if _behind_proxy() else "")
accesslog = os.environ.get("HUB_ACCESS_LOG", "-") or None
logger_class = "hub.gunicorn_logging.RedactingLogger"  # build trigger tokens never reach the access log
errorlog = "-"
# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): several nodes on one
# machine would take it from each other, and nothing in Wharf uses it.
control_socket_disable = True
wsgi_app = "hub.wsgi:application"
# sendfile() is on by default; don't set it here (gunicorn 27 reads `sendfile = True` as --no-sendfile).
# Under gevent, gunicorn's sendfile call is PacedSocket.sendfile (lib/slow_clients.py), which copies the
# file through one buffer per worker instead of calling os.sendfile().


# PostgreSQL connections from a pool per worker (hub/settings.py, HUB_DB_POOL): each client connection of a
# gevent worker is a greenlet with Django connections of its own, which would each open and drop one.
os.environ.setdefault("HUB_DB_POOL", "true")

# Prometheus metrics (README, "Metrics"): each worker counts into files of this folder, which a scrape of
# any worker sums up. prometheus_client reads the variable when a worker first imports it; the folder is
# emptied when the master starts, and a worker that exits leaves its counts (counters survive restarts).
metrics_dir = (Path(os.environ.get("HUB_DATA_DIR") or Path(__file__).resolve().parent / "data").resolve()
               / "metrics" / f"web-{os.environ.get('PORT', '8000')}")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
# Made now, not only in on_starting: `gunicorn --check-config` loads the site without starting, and
# loading it counts.
metrics_dir.mkdir(parents=True, exist_ok=True)


def on_starting(server):
    """Start the node's metrics afresh (the files of a previous run would be summed in)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker):
    """A worker is gone: drop its live gauges (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(metrics_dir))


def post_fork(server, worker):
    """Hand the slow-client limits to the worker (the class is only imported once gunicorn picked it)."""
    if worker_class == "gthread":
        return
    from lib.slow_clients import ClientLimits

    worker.limits = ClientLimits(keepalive=keepalive, **client_limits)


def post_worker_init(worker):
    """Move everything loading the site made (modules, URL patterns, models: ~100,000 objects)
    out of the garbage collector's sight. Otherwise each full collection walks them all, and
    stalls every request of the worker meanwhile: up to ~100 ms measured, 8 ms after freezing."""
    import gc

    gc.collect()
    gc.freeze()
