"""Slow clients cannot starve the server (lib/slow_clients.py under a real gunicorn, gunicorn.conf.py).

Two private hubs: one as behind a proxy (no per-address cap), with a short body idle limit, that holds
200 trickling connections while real clients are served; one not behind a proxy, with one worker and a
small per-address cap. The tests that touch the database also run on the embedded defaults (SQLite).
Bounds are generous: they tell "served" from "starved" (a request that waited for a thread used to
wait up to the one-hour timeout), not how fast.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from django.conf import settings  # noqa: E402

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import Account, ContainerClients, Target  # noqa: E402
from tests.live import start_hub, wait_until  # noqa: E402

pytest_plugins = ["tests.e2e.images"]
pytestmark = [pytest.mark.e2e]

MIB = 1 << 20
BODY_IDLE = 3  # HUB_BODY_IDLE_TIMEOUT of the proxied hub
HEADER_TIMEOUT = 3  # HUB_HEADER_TIMEOUT of the capped hub
CAP = 4  # HUB_MAX_STALLED_PER_ADDRESS of the capped hub
SERVED_WITHIN = 10  # seconds: a served request, however loaded the machine


@pytest.fixture(scope="module")
def proxied_hub(django_db_setup, artifacts_dir):
    hub = start_hub(artifacts_dir, with_worker=False, HUB_BEHIND_PROXY="true",
                    HUB_BODY_IDLE_TIMEOUT=str(BODY_IDLE), HUB_HEADER_TIMEOUT="120")
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def capped_hub(django_db_setup, artifacts_dir):
    hub = start_hub(artifacts_dir, with_worker=False, HUB_WEB_WORKERS="1", HUB_BEHIND_PROXY="false",
                    HUB_MAX_STALLED_PER_ADDRESS=str(CAP), HUB_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    yield hub
    hub.stop()


@pytest.fixture
def account(live_user) -> Account:
    user = live_user()
    return Account(user.username, PASSWORD, user)


def target_of(hub) -> Target:
    return Target(kind="hub", host=hub.host, server=hub)


def staged_file(hub, upload_id: str) -> Path:
    """Where `hub` stages the upload's bytes (a hub with a private broker may have a data dir of its own)."""
    data_dir = hub.extra.get("HUB_DATA_DIR")
    return (Path(data_dir) / "uploads" if data_dir else Path(settings.UPLOAD_STAGING_DIR)) / upload_id


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raw_head(method: str, url: str, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(host: str) -> socket.socket:
    address, port = host.rsplit(":", 1)
    return socket.create_connection((address, int(port)), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed `sock` (EOF or reset); False while it is open and silent."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def answered_or_closed(sock: socket.socket) -> bool:
    """True once the server sent something on `sock` or closed it (without consuming the answer)."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class Tricklers:
    """Connections that each send one more byte every `interval` seconds, from one background thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.socks = interval, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def open(self, host: str, first_bytes: bytes) -> None:
        sock = connect(host)
        sock.sendall(first_bytes)
        self.socks.append(sock)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.socks:
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # closed by the server: closed_by_server() tells

    def __enter__(self) -> Tricklers:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()

    def closed(self) -> int:
        return sum(closed_by_server(sock) for sock in self.socks)


def served(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.sqlite
def test_two_hundred_trickling_connections_do_not_starve_real_clients(proxied_hub, account, test_images, tmp_path):
    target = target_of(proxied_hub)
    clients = ContainerClients(tmp_path / "clients", [target.host])
    pulled_repo, pushed_repo = target.repo(account, "slowpull"), target.repo(account, "slowpush")
    clients.skopeo_push(test_images.small, target.ref(pulled_repo), creds=account.creds)
    api = target.api(account, target.repo(account, "trickle"))
    uploads = [api.start_upload() for _ in range(40)]

    with Tricklers() as tricklers:
        for _ in range(80):  # headers that never end
            tricklers.open(target.host, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(80):  # a small body that never ends (the report's POST /token)
            tricklers.open(target.host, raw_head("POST", f"{target.url}/token", {
                "Content-Type": "application/x-www-form-urlencoded", "Content-Length": "100000"}))
        for location in uploads:  # a layer that never ends, streamed to the application
            tricklers.open(target.host, raw_head("PATCH", location, {
                **api.headers, "Content-Type": "application/octet-stream", "Content-Length": str(10 * MIB)}))
        assert len(tricklers.socks) == 200
        time.sleep(2)  # every trickler is past its first read and waiting on its next byte

        health, seconds = served(lambda: requests.get(f"{target.url}/healthz", timeout=SERVED_WITHIN))
        assert health.status_code == 200 and seconds < SERVED_WITHIN
        manifest, seconds = served(lambda: target.api(account, pulled_repo, "pull").request(
            "GET", f"/v2/{pulled_repo}/manifests/latest", timeout=SERVED_WITHIN,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}))
        assert manifest.status_code == 200, manifest.text[:300]
        assert seconds < SERVED_WITHIN
        push, seconds = served(lambda: clients.skopeo_push(test_images.unique(), target.ref(pushed_repo),
                                                           creds=account.creds))
        assert push.returncode == 0 and seconds < 3 * SERVED_WITHIN

        assert tricklers.closed() == 0, "trickling clients are held, not refused"


def stalled_patch(location: str, headers: dict[str, str], body: bytes, framing: str) -> bytes:
    """A PATCH announcing `body` whole but carrying only its first MiB (then the client goes quiet)."""
    headers = {**headers, "Content-Type": "application/octet-stream"}
    if framing == "chunked":  # podman and buildah
        head = raw_head("PATCH", location, {**headers, "Transfer-Encoding": "chunked"})
        return head + f"{len(body):x}\r\n".encode() + body[:MIB]
    return raw_head("PATCH", location, {**headers, "Content-Length": str(len(body))}) + body[:MIB]


@pytest.mark.sqlite
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_stalled_upload_is_cut_after_its_idle_limit_and_its_bytes_removed(proxied_hub, account, framing):
    target = target_of(proxied_hub)
    api = target.api(account, target.repo(account, "stalled"))
    first, rest = os.urandom(MIB), os.urandom(2 * MIB)
    location = api.start_upload()
    patch = api.request("PATCH", location, data=first, headers={"Content-Type": "application/octet-stream"})
    assert patch.status_code == 202
    location = api.absolute(patch.headers["Location"])
    upload_id = patch.headers["Docker-Upload-UUID"]

    with connect(target.host) as sock:
        sock.sendall(stalled_patch(location, api.headers, rest, framing))
        started = time.monotonic()
        wait_until(lambda: answered_or_closed(sock), timeout=BODY_IDLE + 20, interval=0.05,
                   message="the server to give up on the stalled body")
        waited = time.monotonic() - started
    assert BODY_IDLE - 1 <= waited < BODY_IDLE + 20

    status = wait_until(lambda: (r := api.request("GET", location)).status_code == 204 and r,
                        message="the upload to answer its status")
    assert status.headers["Range"] == f"0-{MIB - 1}", "the cut request's bytes are not counted"
    assert staged_file(proxied_hub, upload_id).stat().st_size == MIB, "the cut request's bytes are not kept"
    finish = api.request("PUT", location, params={"digest": sha256(first + rest)}, data=rest,
                         headers={"Content-Type": "application/octet-stream"})
    assert finish.status_code == 201, finish.text[:300]
    assert sha256(api.get_blob(sha256(first + rest)).content) == sha256(first + rest)


def test_a_slow_but_steady_upload_completes(proxied_hub, account):
    """100 MiB at about 5 MiB/s, chunked as podman sends it: far longer than the idle limit in total,
    never idle for it."""
    target = target_of(proxied_hub)
    api = target.api(account, target.repo(account, "steady"))
    piece = os.urandom(256 * 1024)
    total = 100 * MIB
    digest = hashlib.sha256()

    def paced():
        sent = 0
        while sent < total:
            chunk = piece[: min(len(piece), total - sent)]
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
            time.sleep(0.05)

    location = api.start_upload()
    started = time.monotonic()
    patch = api.request("PATCH", location, data=paced(), timeout=120,
                        headers={"Content-Type": "application/octet-stream"})
    assert patch.status_code == 202, patch.text[:300]
    assert time.monotonic() - started > 2 * BODY_IDLE
    expected = "sha256:" + digest.hexdigest()
    finish = api.request("PUT", api.absolute(patch.headers["Location"]), params={"digest": expected})
    assert finish.status_code == 201, finish.text[:300]
    stored = hashlib.sha256()
    with api.request("GET", api.url(f"blobs/{expected}"), stream=True) as blob:
        assert blob.status_code == 200
        for chunk in blob.iter_content(MIB):
            stored.update(chunk)
    assert "sha256:" + stored.hexdigest() == expected


def test_one_address_holds_at_most_the_cap_of_stalled_requests(capped_hub):
    socks = [connect(capped_hub.host) for _ in range(2 * CAP)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        wait_until(lambda: sum(closed_by_server(s) for s in socks) == CAP, timeout=HEADER_TIMEOUT - 0.5,
                   interval=0.05, message=f"{CAP} of the {2 * CAP} stalled requests to be cut")
        assert requests.get(f"{capped_hub.url}/healthz", timeout=SERVED_WITHIN).status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_headers_must_arrive_within_the_header_timeout(capped_hub):
    with Tricklers(interval=0.2) as tricklers:
        tricklers.open(capped_hub.host, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        wait_until(lambda: tricklers.closed() == 1, timeout=HEADER_TIMEOUT + 10, interval=0.1,
                   message="the trickled headers to be cut")
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5


def test_a_pipelined_request_s_headers_get_the_header_timeout_not_the_keepalive(capped_hub):
    sock = connect(capped_hub.host)
    try:  # a whole request and the start of the next in one send, then nothing more
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        wait_until(lambda: closed_by_server(sock), timeout=HEADER_TIMEOUT + 10, interval=0.1,
                   message="the pipelined request's unfinished headers to be cut (not after keepalive, 75 s)")
    finally:
        sock.close()
    assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5


def test_the_site_stops_within_ten_seconds_with_slow_clients_connected(django_db_setup, artifacts_dir):
    hub = start_hub(artifacts_dir, with_worker=False, HUB_BEHIND_PROXY="true")
    try:
        with Tricklers() as tricklers:
            for _ in range(50):
                tricklers.open(hub.host, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            keepalive = requests.Session()
            assert keepalive.get(f"{hub.url}/healthz", timeout=SERVED_WITHIN).status_code == 200  # then idle
            time.sleep(1.5)
            started = time.monotonic()
            hub.process.send_signal(signal.SIGTERM)
            try:
                hub.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"gunicorn still running 10 s after TERM:\n{hub.log()}")
            assert time.monotonic() - started < 10
    finally:
        hub.stop()



def database_sessions(django_db_blocker) -> int:
    """Sessions PostgreSQL has open on the test database (the hubs' and this process's)."""
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_blob_downloads_to_clients_that_do_not_read_hold_no_database_connection(proxied_hub, account,
                                                                                 django_db_blocker):
    """A blob GET is sent for as long as the client takes to read it: under gevent nothing bounds how
    many are in progress, so none may keep a database connection meanwhile (PostgreSQL's max_connections)."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("counts PostgreSQL sessions")
    target = target_of(proxied_hub)
    api = target.api(account, target.repo(account, "unread"))
    blob = os.urandom(32 * MIB)
    assert api.push_blob(blob).status_code == 201
    before = database_sessions(django_db_blocker)
    readers = []
    try:
        for _ in range(10):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(SERVED_WITHIN)
            address, port = target.host.rsplit(":", 1)
            sock.connect((address, int(port)))
            sock.sendall(raw_head("GET", api.url(f"blobs/{sha256(blob)}"), api.headers))
            assert sock.recv(12) == b"HTTP/1.1 200"  # the view ran; then the client reads no more
            readers.append(sock)
        time.sleep(1)
        assert database_sessions(django_db_blocker) - before < 5
    finally:
        for sock in readers:
            sock.close()


def test_a_client_connection_that_ends_closes_its_database_connection(proxied_hub, account, django_db_blocker):
    """Django keeps a database connection per greenlet under gevent, one per client connection: it is
    closed when the client's connection ends, not left open until the garbage collector finds it."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("counts PostgreSQL sessions")
    target = target_of(proxied_hub)
    api = target.api(account, target.repo(account, "ended"))
    blob = os.urandom(1000)
    assert api.push_blob(blob).status_code == 201
    before = database_sessions(django_db_blocker)
    for _ in range(30):
        head = requests.head(api.url(f"blobs/{sha256(blob)}"), headers={**api.headers, "Connection": "close"},
                             timeout=SERVED_WITHIN)
        assert head.status_code == 200
    wait_until(lambda: database_sessions(django_db_blocker) - before <= 3, timeout=5, interval=0.2,
               message="the ended connections' database sessions to close")


def test_idle_kept_alive_connections_count_towards_the_cap(capped_hub):
    """A kept-alive connection waiting for its next request counts as stalled too: otherwise one address
    could fill every connection slot of the workers (worker_connections) with requests of a few bytes."""
    socks = [connect(capped_hub.host) for _ in range(2 * CAP)]
    try:
        for sock in socks:
            sock.sendall(raw_head("GET", f"{capped_hub.url}/healthz", {}))
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]  # then the connection stays idle
        wait_until(lambda: sum(closed_by_server(s) for s in socks) == CAP, timeout=10, interval=0.05,
                   message=f"{CAP} of the {2 * CAP} idle connections to be closed")
        assert requests.get(f"{capped_hub.url}/healthz", timeout=SERVED_WITHIN).status_code == 200
    finally:
        for sock in socks:
            sock.close()
