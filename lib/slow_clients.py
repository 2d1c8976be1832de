"""gunicorn's gevent worker with limits on how long a client may keep a request waiting for its bytes.

gunicorn.conf.py picks `SlowClientWorker`. Every connection is a greenlet, so a client that sends
slowly costs a socket and a few KiB, not a thread. Each read from a client is bounded:

- headers: the request line and headers must all arrive within `header_timeout` of their first byte
  (a new connection's clock starts when it is accepted);
- body: each read may wait at most `body_idle_timeout` for the next bytes, however long the whole
  body takes, so a multi-GiB layer over a slow link goes through and a stalled one is cut;
- between requests on a kept-alive connection: gunicorn's `keepalive`.

A read that waits longer than `stall_grace` (an idle kept-alive connection's wait for its next request
too) counts as a stalled request of the client's address while it waits; with
`max_stalled_per_address` set (not behind a proxy, where every client has the proxy's address), one
more stalled request than that from the same address is cut at once. The count is per worker process.

A body read that runs out of time raises `ClientTimeout` (an OSError, as a dropped connection is) in
the application, which answers and truncates what it staged; headers or a small body (up to
`buffered_body_bytes`, read whole before the application starts) that run out of time close the
connection without involving the application. When the worker stops, connections that are between
requests or still sending headers are closed at once, so only requests in progress delay the exit.

TLS terminated by gunicorn itself (a `certfile`) gets gevent's own sockets, without these limits:
Wharf terminates TLS in a proxy (README, "Production").

No Django imports at module level: gunicorn's arbiter loads this module before the site.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import socket
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent import socket as gsocket
from gunicorn.http.body import LengthReader
from gunicorn.workers.ggevent import GeventWorker

IDLE, HEADERS, BODY = "idle", "headers", "body"
SEND_BUFFER_BYTES = 1024 * 1024
SEND_BUFFER = memoryview(bytearray(SEND_BUFFER_BYTES))  # PacedSocket.sendfile's, one per worker process


class ClientTimeout(TimeoutError):
    """The client sent nothing for longer than its limit (or its address holds too many stalled requests)."""


class _NotYet(Exception):
    """No bytes yet (a wait's own timeout)."""


@dataclass(frozen=True)
class ClientLimits:
    header_timeout: float = 20.0
    body_idle_timeout: float = 60.0
    keepalive: float = 75.0
    stall_grace: float = 1.0
    max_stalled_per_address: int = 0  # 0: no cap (behind a proxy)
    buffered_body_bytes: int = 64 * 1024


class StallCounter:
    """Stalled reads in progress, per client address (one worker process, one OS thread: no lock)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.by_address: Counter[str] = Counter()

    def enter(self, address: str) -> bool:
        if self.cap and self.by_address[address] >= self.cap:
            return False
        self.by_address[address] += 1
        return True

    def leave(self, address: str) -> None:
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class PacedSocket(gsocket.socket):
    """A client connection whose reads are bounded by the phase of the request it carries."""

    def __init__(self, client: gsocket.socket, address: str, limits: ClientLimits, stalls: StallCounter,
                 log_cut: Callable[[str], None]) -> None:
        super().__init__(client.family, client.type, fileno=client.detach())
        self.address, self.limits, self.stalls, self.log_cut = address, limits, stalls, log_cut
        self.phase = HEADERS
        self.headers_deadline = time.monotonic() + limits.header_timeout

    def expect_body(self) -> None:
        self.phase = BODY

    def expect_request(self, *, begun: bool = False) -> None:
        """Between requests; `begun`: the next request's first bytes came with the last one's (pipelined),
        so its headers' clock starts now, not after a keep-alive wait."""
        if begun:
            self.phase, self.headers_deadline = HEADERS, time.monotonic() + self.limits.header_timeout
        else:
            self.phase = IDLE

    def between_requests(self) -> bool:
        return self.phase in (IDLE, HEADERS)

    def recv(self, size: int, *args) -> bytes:
        while True:
            try:
                data = self._sock.recv(size, *args)  # bytes already there (or EOF): no wait
            except BlockingIOError:
                if not self._wait_for_bytes():
                    return b""
                continue
            if self.phase == IDLE:  # the next request begins: its headers' clock starts
                self.phase, self.headers_deadline = HEADERS, time.monotonic() + self.limits.header_timeout
            return data

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """A file's bytes into the socket, copied through the worker's one `SEND_BUFFER`, waiting on the
        socket's write watcher when its buffer is full.

        Not os.sendfile(): the client's receive window grew far less with page-cache pages spliced into
        its segments than with copied bytes, so it took ~33 KB segments instead of ~64 KB, woke more
        often and spent more CPU per byte. A skopeo pull read 7% slower than from the Go reference,
        1 MiB write()s 5% faster (bench/registry.py, #18). Nor gevent's own sendfile(), a loop of 8 KiB
        reads and sends through Python (blob GETs at ~0.7× gthread's speed). The buffer is only used
        between two waits (greenlets switch only there), so every connection shares it: a thousand slow
        readers cost no buffer each. Bytes the socket did not take are read again after the wait."""
        self._check_sendfile_params(file, offset, count)
        try:
            in_fd = file.fileno()
            end = os.fstat(in_fd).st_size
        except (AttributeError, OSError, io.UnsupportedOperation):
            return super().sendfile(file, offset, count)
        if count is not None:
            end = min(end, offset + count)
        position = offset
        try:
            while position < end:
                read = os.preadv(in_fd, [SEND_BUFFER[:end - position]], position)
                if not read:  # the file is shorter than it was
                    break
                try:
                    sent = self._sock.send(SEND_BUFFER[:read])
                except BlockingIOError:
                    sent = 0
                position += sent
                if sent < read:  # the socket's buffer is full: wait before reading the rest again
                    self._wait(self._write_event)  # as gevent's send() waits (the socket's timeout)
                else:
                    gevent.sleep(0)  # a client reading fast never keeps the worker's other greenlets waiting
        finally:
            if position > offset:
                file.seek(position)
        return position - offset

    def _wait_for_bytes(self) -> bool:
        """Wait within the phase's limit; False: close quietly. A body that runs out of time raises
        ClientTimeout, an OSError, in the application reading it, as when a client hangs up."""
        if self.phase == IDLE:  # an idle kept-alive connection expires quietly, and counts as stalled
            try:  # (else one address could fill every connection slot with finished requests)
                return self._wait_readable(self.limits.keepalive, stalled_counts=True)
            except ClientTimeout as exc:
                self.log_cut(str(exc))
                return False
        try:
            if self._wait_readable(self._time_left(), stalled_counts=True):
                return True
            raise ClientTimeout(f"{self.address} took longer than {self._limit():.0f} s "
                                f"to send the next bytes of the request {self.phase}")
        except ClientTimeout as exc:
            self.log_cut(str(exc))
            if self.phase == HEADERS:
                return False  # as if the client hung up: no request, nothing for the application
            raise

    def _limit(self) -> float:
        return self.limits.header_timeout if self.phase == HEADERS else self.limits.body_idle_timeout

    def _time_left(self) -> float:
        """Headers: what is left until the deadline; body: the whole idle limit again for each read."""
        if self.phase == HEADERS:
            return self.headers_deadline - time.monotonic()
        return self.limits.body_idle_timeout

    def _wait_readable(self, limit: float, *, stalled_counts: bool) -> bool:
        """Wait up to `limit` seconds for bytes (or EOF); False when they did not come in time."""
        if not stalled_counts:
            return self._readable_within(limit)
        grace = min(limit, self.limits.stall_grace)
        if self._readable_within(grace):
            return True
        if not self.stalls.enter(self.address):
            raise ClientTimeout(f"{self.address} already holds {self.stalls.cap} stalled requests")
        try:
            return self._readable_within(limit - grace)
        finally:
            self.stalls.leave(self.address)

    def _readable_within(self, seconds: float) -> bool:
        if seconds <= 0:
            return False
        try:  # on the socket's own read watcher, as gevent's recv() waits: no new watcher per wait
            gsocket.wait(self._read_event, timeout=seconds, timeout_exc=_NotYet)
        except _NotYet:
            return False
        return True


class SlowClientWorker(GeventWorker):
    """gunicorn's gevent worker with `ClientLimits` on every client read (gunicorn.conf.py sets `limits`)."""

    limits = ClientLimits()

    def init_process(self) -> None:
        self.stalls = StallCounter(self.limits.max_stalled_per_address)
        self.connections: weakref.WeakSet[PacedSocket] = weakref.WeakSet()
        super().init_process()

    def timeout_ctx(self):
        return contextlib.nullcontext()  # PacedSocket bounds every wait for the next request itself

    def handle(self, listener, client, addr) -> None:
        try:
            if self.cfg.is_ssl:
                return super().handle(listener, client, addr)  # TLS in gunicorn itself: gevent's own socket
            paced = PacedSocket(client, _host(addr), self.limits, self.stalls, self._log_cut)
            self.connections.add(paced)
            return super().handle(listener, paced, addr)
        finally:
            _close_database_connections()

    def handle_request(self, listener_name, req, sock, addr):
        if not isinstance(sock, PacedSocket):
            return super().handle_request(listener_name, req, sock, addr)
        sock.expect_body()
        try:
            if not self._buffer_small_body(req, sock):
                raise StopIteration()
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            sock.expect_request(begun=bool(req.unreader.buf.getvalue()))

    def _buffer_small_body(self, req, sock: PacedSocket) -> bool:
        """Read a small body with a Content-Length whole before the application runs, so a client that
        trickles it never holds the application (or a database connection); False when it timed out."""
        reader = getattr(req.body, "reader", None)
        length = reader.length if isinstance(reader, LengthReader) else 0
        if not length or length > self.limits.buffered_body_bytes:
            return True
        try:
            data = req.unreader.read(length)
        except ClientTimeout:
            return False
        req.unreader.unread(data)
        return len(data) == length  # shorter: the client hung up mid-body

    def _log_cut(self, reason: str) -> None:
        self.log.info("closed a slow request: %s", reason)

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        gevent.spawn(self._close_waiting_connections)

    def _close_waiting_connections(self) -> None:
        """On stop, drop connections with no request in progress: only requests being served delay the exit."""
        for conn in list(self.connections):
            if conn.between_requests():
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def _close_database_connections() -> None:
    """The client's connection ended: close the database connections its greenlet opened. Django keeps
    them per thread, here per greenlet; left to the garbage collector they stayed open on the server."""
    from django.db import connections  # the site is loaded by the time a client connects

    connections.close_all()


def _host(addr) -> str:
    """The client's address as the cap counts it: an IPv4 address, or an IPv6 address's /64 (one
    subscriber's usual allocation, which would otherwise give one client 2**64 addresses)."""
    if not isinstance(addr, tuple):
        return str(addr)  # a Unix socket: one peer, the proxy
    try:
        address = ipaddress.ip_address(addr[0])
    except ValueError:
        return str(addr[0])
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
