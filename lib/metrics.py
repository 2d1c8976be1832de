"""Prometheus metrics: the definitions every layer counts into, and how they are exposed.

Counting is always on and cheap (a few microseconds a request); exposing them needs a bearer token
(HUB_METRICS_TOKEN): the web nodes answer `GET /metrics` (hub/views.py), a Celery worker answers on a
port of its own (`serve_metrics`, started from hub/celery.py). README, "Metrics".

Labels are route templates, methods, status codes, task names and outcomes: never a repository, user,
tag or digest name (they would reveal private repositories, and anyone could grow the series count).

Processes that share their counts (gunicorn's workers, a Celery worker's pool) write them to files in
PROMETHEUS_MULTIPROC_DIR, which must be set before prometheus_client is first imported (gunicorn.conf.py,
hub/celery.py); a scrape sums the files. Without it (manage.py, tests) the counts are the process's own.

No Django imports.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import re
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import REGISTRY, CollectorRegistry

logger = logging.getLogger(__name__)

# --- HTTP -------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "wharf_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "wharf_http_request_duration_seconds",
    "Time from the request reaching Django to its response being returned (a streamed body's bytes are "
    "not included), by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
RATE_LIMITED = Counter(
    "wharf_rate_limited", "Requests refused with 429 (too many failed logins, or a request rate), by door.",
    ["door"])

# --- Registry ---------------------------------------------------------------------------------------
BYTES_PUSHED = Counter("wharf_registry_bytes_pushed", "Blob upload bytes received and written to the store.")
BYTES_PULLED = Counter(
    "wharf_registry_bytes_pulled",
    "Blob bytes sent on a GET (served: by this node, the requested range; redirected: the blob's size, "
    "for a 307 to the object store).", ["delivery"])
PULLS = Counter("wharf_registry_pulls", "Pulls: manifest GETs counted as Docker Hub counts them.")

# --- Background work --------------------------------------------------------------------------------
CELERY_TASKS = Counter("wharf_celery_tasks", "Celery tasks finished, by task name and outcome "
                       "(success, failure, retry).", ["task", "outcome"])
WEBHOOK_DELIVERIES = Counter("wharf_webhook_deliveries", "Webhook delivery attempts, by outcome "
                             "(success, failure: given up, retry: tried again later, cancelled).", ["outcome"])
BUILDS = Counter("wharf_builds", "Builds finished, by outcome (success, failed, cancelled, timed_out).",
                 ["outcome"])
BUILD_DURATION = Histogram(
    "wharf_build_duration_seconds", "Time from a build's start (claimed by a worker) to its end, by outcome.",
    ["outcome"], buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200))

# --- Route labels -----------------------------------------------------------------------------------
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def route_template(route: str) -> str:
    """`/v2/<name>/manifests/<reference>` for `^v2/(?P<name>…)/manifests/(?P<reference>[^/]+)$`: a
    URL pattern as a label (path() routes keep their converters)."""
    out, i = [], 0
    while (match := _NAMED_GROUP.search(route, i)) is not None:
        out.append(route[i:match.start()])
        out.append(f"<{match.group(1)}>")
        depth, j = 1, match.end()
        while j < len(route) and depth:  # skip to the group's closing parenthesis
            if route[j] == "\\":
                j += 1
            elif route[j] == "(":
                depth += 1
            elif route[j] == ")":
                depth -= 1
            j += 1
        i = j
    out.append(route[i:])
    text = "".join(out).removeprefix("^").removesuffix("$")
    if text.endswith("/?"):
        text = text[:-1]
    return "/" + text.replace("\\.", ".")


def door(route: str, url_name: str | None) -> str:
    """Which kind of door a route is, for 429s: registry_token, registry, hub_api, web_login, web."""
    if url_name == "registry-token":
        return "registry_token"
    if (url_name or "").startswith("registry-"):
        return "registry"
    if route.startswith(("^v2/", "v2/", "^api/", "api/")):
        return "hub_api"
    if route.startswith(("accounts/", "admin/")):
        return "web_login"
    return "web"


class HttpRecorder:
    """Counts requests by URL pattern, method and status, and times them.

    A request adds to this process's sums under a lock (one dictionary lookup, ~1.5 µs); a daemon thread
    (a greenlet under gevent) moves them into the metrics every FLUSH_SECONDS, and a scrape of this
    process first (`flush`). Incrementing prometheus_client's values directly costs ~7 µs a request in
    multiprocess mode (a locked write to a memory-mapped file per value: the counter, the histogram's sum
    and its bucket). A pattern's label and metric children are made once per (pattern, method, status).
    """

    FLUSH_SECONDS = 1.0

    def __init__(self, static_prefix: str = "/static/") -> None:
        self.static_prefix = static_prefix
        self.bounds = HTTP_DURATION._upper_bounds  # (…, +Inf): a duration's bucket is the first bound >= it
        self.children: dict[tuple, tuple] = {}
        self.pending: dict[tuple, list] = {}  # key → [requests, seconds, requests per bucket]
        self.lock = threading.Lock()
        self.flusher_pid = 0

    def record(self, route: str | None, url_name: str | None, path: str, method: str, status: int,
               seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        if route is None:  # no URL pattern: a 404, or a static file WhiteNoise served
            key = ("static" if path.startswith(self.static_prefix) else UNMATCHED, method, status, False)
        else:
            key = (route, method, status)
        with self.lock:
            entry = self.pending.get(key)
            if entry is None:
                entry = self.pending[key] = self._new_entry(key, url_name)
            entry[0] += 1
            entry[1] += seconds
            entry[2][bisect_left(self.bounds, seconds)] += 1

    def _new_entry(self, key: tuple, url_name: str | None) -> list:
        if key not in self.children:
            route, method, status = key[:3]
            if len(key) == 4:
                label, kind = route, "web"
            else:
                label, kind = route_template(route), door(route, url_name)
            self.children[key] = (HTTP_REQUESTS.labels(label, method, str(status)), HTTP_DURATION.labels(label, method),
                                  RATE_LIMITED.labels(kind) if status == 429 else None)
        if self.flusher_pid != os.getpid():  # first request of this process (gunicorn forks before loading the site)
            self.flusher_pid = os.getpid()
            threading.Thread(target=self._flush_forever, name="metrics-flush", daemon=True).start()
        return [0, 0.0, [0] * len(self.bounds)]

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # keep flushing: the next round may succeed
                logger.exception("metrics: could not flush the request counts")

    def flush(self) -> None:
        """Move this process's pending sums into the metrics (prometheus_client 0.26's Histogram keeps a
        value per bucket and one for the sum, `_buckets` and `_sum`: what `observe` adds to)."""
        with self.lock:
            pending, self.pending = self.pending, {}
        for key, (count, seconds, buckets) in pending.items():
            counter, histogram, refused = self.children[key]
            counter.inc(count)
            if refused is not None:
                refused.inc(count)
            histogram._sum.inc(seconds)
            for index, in_bucket in enumerate(buckets):
                if in_bucket:
                    histogram._buckets[index].inc(in_bucket)


HTTP = HttpRecorder()
atexit.register(HTTP.flush)


# --- Access -----------------------------------------------------------------------------------------
def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time. An empty token authorizes nothing."""
    if not token or not header:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # WSGI gives header bytes decoded as latin-1: compare bytes with the token's UTF-8 bytes.
    return hmac.compare_digest(presented.strip().encode("latin-1", "replace"), token.encode())


# --- Exposition -------------------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: look at every process's parent
        children = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stat = Path(entry.path, "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    children.append(int(entry.name))
        return children


class ProcessTreeCollector:
    """process_* metrics of a process and its children together (a gunicorn master and its workers, a
    Celery worker and its pool): CPU time, memory and open files summed; start time and file limit the
    parent's. Summed, because one worker's own figures say little about the node."""

    SUMMED = {"process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
              "process_open_fds"}

    def __init__(self, root_pid: Callable[[], int]) -> None:
        self.root_pid = root_pid

    def collect(self) -> Iterable[Metric]:
        root = self.root_pid()
        pids = [root, *_children_of(root)]
        totals: dict[str, float] = {}
        families: dict[str, Metric] = {}
        for pid in pids:
            for family in ProcessCollector(pid=lambda pid=pid: str(pid), registry=None).collect():
                families.setdefault(family.name, family)
                for sample in family.samples:
                    if family.name in self.SUMMED or pid == root:
                        totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        for name, family in families.items():
            documentation = family.documentation + (" (the process and its children)" if name in self.SUMMED else "")
            kind = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
            out = kind(name, documentation)
            for sample in family.samples:
                if sample.name in totals:
                    out.add_metric([], totals[sample.name])
            yield out
        yield GaugeMetricFamily("wharf_processes", "Processes counted in process_* (the parent and its children).",
                                value=len(pids))


class _Sources:
    """What generate_latest reads: the metric families of several collectors."""

    def __init__(self, collectors: Iterable) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            try:
                yield from collector.collect()
            except Exception:  # one broken source (a broker down) must not hide the rest
                logger.exception("metrics: %s failed", type(collector).__name__)


def exposition(extra: Iterable = (), *, root_pid: Callable[[], int] = os.getppid) -> bytes:
    """The metrics text: every process's counts (summed from PROMETHEUS_MULTIPROC_DIR when it is set),
    process metrics of `root_pid()` and its children (this process alone without the folder), and `extra`
    collectors (figures read at scrape time)."""
    HTTP.flush()
    path = multiprocess_dir()
    if path is None:
        collectors: list = [REGISTRY]
    else:
        counts = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(counts, path=path)
        collectors = [counts, ProcessTreeCollector(root_pid), PlatformCollector(registry=None)]
    return generate_latest(_Sources([*collectors, *extra]))


CONTENT_TYPE = CONTENT_TYPE_LATEST


# --- A worker's own endpoint ------------------------------------------------------------------------
class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def metrics_app(token: Callable[[], str], extra: Iterable = (), root_pid: Callable[[], int] = os.getpid):
    """A WSGI app answering GET /metrics with the bearer token: 404 when the token is empty (metrics
    off) or for any other path, 401 without the right token."""
    extra = list(extra)

    def app(environ, start_response):
        secret = token()
        if not secret or environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION"), secret):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"unauthorized\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain"), ("Allow", "GET, HEAD")])
            return [b"method not allowed\n"]
        body = exposition(extra, root_pid=root_pid)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    return app


def serve_metrics(bind: str, port: int, app) -> WSGIServer:
    """Serve `app` on bind:port from a daemon thread; returns the server (its port when `port` was 0)."""
    family = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (_Server,), {"address_family": family})
    server = make_server(bind, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    return server
