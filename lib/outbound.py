"""The outbound HTTP client (webhook deliveries, build sources and base-image registries), safe against
server-side request forgery.

- only http and https, no credentials in the URL;
- the host is resolved once, every address is checked (loopback, private, link-local, multicast,
  reserved and other non-global ranges are refused unless an allowed network contains them), and
  the connection goes to that checked address (the Host header and the TLS server name carry the
  name), so a second DNS answer cannot point it elsewhere;
- redirects are never followed; connect and read time out; the response read is capped.

A batch of deliveries can share a `Connections`: it keeps connections alive between the batch's
requests to the same checked address, and each name's DNS answer for the batch. Every request
still has its URL parsed and its address checked; a kept connection only ever goes to an address
that passed the check.

No Django here: callers pass the allowed networks.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
TOTAL_READ_SECONDS = 10.0  # a server dripping bytes cannot hold a worker longer than this
MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of a response
MAX_URL_LENGTH = 2000
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
IDLE_REUSE_SECONDS = 1.0  # a kept-alive connection idle longer is closed rather than reused


class DeliveryRefused(Exception):
    """The URL or the address it resolves to is not allowed: nothing was sent."""


class DeliveryFailed(Exception):
    """The request did not complete (DNS, connection, TLS, timeout): worth retrying."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # IDNA-encoded name or IP literal, without brackets
    port: int
    path: str  # path and query
    host_header: str


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes  # at most MAX_RESPONSE_BYTES
    truncated: bool
    duration_ms: int
    address: str


def parse_networks(values: Iterable[str]) -> list[Network]:
    """CIDRs from settings (`127.0.0.0/8`, `10.1.2.3`, `fd00::/8`); raises ValueError on a bad one."""
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def parse_url(url: str, *, max_length: int = MAX_URL_LENGTH) -> Target:
    """Check the URL's shape (no DNS); raises DeliveryRefused with a reason people can act on."""
    if not isinstance(url, str) or not url or len(url) > max_length:
        raise DeliveryRefused(f"the URL must be 1–{max_length} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise DeliveryRefused("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DeliveryRefused(f"the URL is not valid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DeliveryRefused("only http:// and https:// URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise DeliveryRefused("credentials in the URL are not allowed: use a secret or a custom header")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DeliveryRefused("the URL has no host")
    try:
        ipaddress.ip_address(host)
        ascii_host = host
    except ValueError:
        try:
            ascii_host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise DeliveryRefused("the host name is not valid") from None
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 0 < port < 65536:
        raise DeliveryRefused("the port is out of range")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    shown_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    default_port = 443 if scheme == "https" else 80
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    return Target(scheme=scheme, host=ascii_host, port=port, path=path, host_header=host_header)


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: Address, allowed: Iterable[Network]) -> str | None:
    """Why `address` may not be contacted, or None when it may."""
    address = _plain(address)
    for network in allowed:
        if address.version == network.version and address in network:
            return None
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return f"{address} is a {label} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def addresses(target: Target) -> list[Address]:
    """Every address the host stands for (an IP literal, or the name's DNS answer), unchecked."""
    try:
        return [ipaddress.ip_address(target.host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryFailed(f"cannot resolve {target.host}: {exc}") from None
    candidates: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in candidates:
            candidates.append(address)
    if not candidates:
        raise DeliveryFailed(f"{target.host} has no address")
    return candidates


def checked_address(target: Target, candidates: Iterable[Address], allowed: Iterable[Network]) -> str:
    """The one address to connect to: the first of `candidates` that may be contacted."""
    allowed = list(allowed)
    reasons = []
    for address in candidates:
        reason = address_refusal(address, allowed)
        if reason is None:
            return str(_plain(address))
        reasons.append(reason)
    raise DeliveryRefused(f"refused to connect to {target.host}: {reasons[0]}")


def resolve(target: Target, allowed: Iterable[Network]) -> str:
    """The one address to connect to: the first allowed address the name resolves to."""
    return checked_address(target, addresses(target), allowed)


class _KeptAlive:
    """What a kept-alive connection needs beyond urllib3's (mixed into its connection classes).

    - It is not reused after IDLE_REUSE_SECONDS without a request: receivers close idle connections
      (gunicorn after 2 s), and a request sent just as they do fails; a fresh connection is made instead.
    - It acknowledges the response at once (Linux): a kept-alive connection otherwise delays its ACKs,
      and a receiver that writes its headers and its body apart without TCP_NODELAY (Python's
      http.server does) then holds the body back until the delayed ACK, 40 ms, on every request.
    """

    _answered_at: float | None = None

    @property
    def is_connected(self) -> bool:  # urllib3 asks before it reuses a connection
        if self._answered_at is not None and time.monotonic() - self._answered_at > IDLE_REUSE_SECONDS:
            return False
        return super().is_connected

    def close(self) -> None:
        self._answered_at = None
        super().close()

    def getresponse(self, *args, **kwargs):
        if QUICKACK is not None and self.sock is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                pass
        response = super().getresponse(*args, **kwargs)
        self._answered_at = time.monotonic()
        return response


class _HTTPConnection(_KeptAlive, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_KeptAlive, urllib3.connection.HTTPSConnection):
    pass


def _pool(target: Target, address: str, *, size: int = 1) -> urllib3.HTTPConnectionPool:
    return connection_pool(target, address, size=size)


def connection_pool(target: Target, address: str, *, size: int = 1, connect_timeout: float = CONNECT_TIMEOUT,
                    read_timeout: float = READ_TIMEOUT) -> urllib3.HTTPConnectionPool:
    """A urllib3 pool whose connections go to `address` (checked by the caller: `resolve`, or a host
    the operator named), with `target.host` as the Host header's name, TLS server name and the name
    the certificate must match. Redirects and retries are the caller's business (urlopen with
    redirect=False, retries=False); idle connections are kept as `Connections` keeps them."""
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            host=address, port=target.port, timeout=timeout, retries=False, maxsize=size,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
        )
        pool.ConnectionCls = _HTTPSConnection
        return pool
    pool = urllib3.HTTPConnectionPool(host=address, port=target.port, timeout=timeout, retries=False, maxsize=size)
    pool.ConnectionCls = _HTTPConnection
    return pool


class Connections:
    """Keep-alive connections and resolved names shared by one batch of deliveries (thread-safe).

    A pool is kept per checked address, port and scheme (and, for https, the name the certificate
    must match), holding at most `size` idle connections. A name is resolved once per batch (a
    failure is not kept); its addresses are checked on every request. Close it when the batch is done.
    """

    def __init__(self, *, size: int = 1) -> None:
        self.size = max(1, size)
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}
        self._addresses: dict[tuple[str, int], list[Address]] = {}
        self._lock = threading.Lock()

    def address(self, target: Target, allowed: Iterable[Network]) -> str:
        """`resolve`, with the name's DNS answer kept for the batch (the check runs every time)."""
        key = (target.host, target.port)
        with self._lock:
            candidates = self._addresses.get(key)
        if candidates is None:
            candidates = addresses(target)
            with self._lock:
                self._addresses[key] = candidates
        return checked_address(target, candidates, allowed)

    def pool(self, target: Target, address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, address, target.port, target.host if target.scheme == "https" else "")
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _pool(target, address, size=self.size)
        return pool

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            self._addresses.clear()
        for pool in pools:
            pool.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def post(url: str, body: bytes, headers: dict[str, str], *, allowed_networks: Iterable[Network] = (),
         max_bytes: int = MAX_RESPONSE_BYTES, connections: Connections | None = None) -> Response:
    """POST `body` once. Raises DeliveryRefused (nothing sent) or DeliveryFailed (network trouble).

    With `connections`, the connection is taken from (and, when the response was read to its end,
    given back to) the batch's pools; without, it is opened for this request and closed after it.
    """
    target = parse_url(url)
    if connections is None:
        address = resolve(target, allowed_networks)
        pool = _pool(target, address)
    else:
        address = connections.address(target, allowed_networks)
        pool = connections.pool(target, address)
    sent_headers = {**headers, "Host": target.host_header, "Content-Length": str(len(body))}
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=sent_headers, redirect=False, retries=False,
            preload_content=False, assert_same_host=False, release_conn=False,
        )
        complete = False
        try:
            chunks, size, truncated = [], 0, False
            while True:
                chunk = response.read(min(16 * 1024, max_bytes + 1 - size))
                if not chunk:
                    complete = True
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    truncated = True
                    break
                if time.monotonic() - started > TOTAL_READ_SECONDS:
                    truncated = True
                    break
            data = b"".join(chunks)[:max_bytes]
            status = response.status
            response_headers = dict(response.headers.items())
        finally:
            if not complete or connections is None:
                response.close()  # never read the rest of a large body
            response.release_conn()  # a closed connection goes back too: its pool slot reconnects
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryFailed(_describe(exc)) from None
    except OSError as exc:
        raise DeliveryFailed(str(exc) or exc.__class__.__name__) from None
    finally:
        if connections is None:
            pool.close()
    return Response(status=status, headers=response_headers, body=data, truncated=truncated,
                    duration_ms=int((time.monotonic() - started) * 1000), address=address)


def describe_failure(exc: Exception) -> str:
    """A short, credential-free account of a urllib3 failure (for DeliveryFailed and its kin)."""
    return _describe(exc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "timed out waiting for the response"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return f"connection failed ({exc.__class__.__name__}): {exc}".replace("\n", " ")[:300]
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return f"connection broken: {exc}"
    return f"{exc.__class__.__name__}: {exc}"
