"""The upstream registry client of a pull-through mirror (issue 22): manifests and blobs from another
registry, with its token authentication, its redirects and every byte checked against its digest.

- Token auth (distribution's token scheme, /work/shared/REFERENCE.md §2): a 401 with a `Bearer`
  challenge fetches a token from the realm, anonymously or with the mirror's credentials (Basic, sent
  to the realm only), and retries once; tokens are kept per (mirror, realm, service, scope) until they
  expire (process memory, thread- and greenlet-safe, one fetch per key at a time), and later requests
  for the same repository send the kept token at once, so a warm mirror costs the upstream no 401s
  and the realm nothing. A `Basic` challenge is answered with the credentials, on the mirror's own host.
- Trust: the mirror's own origin (scheme, host, port of its URL) is reached whatever its address,
  because the operator named it. Any other host (a realm elsewhere, a CDN a blob redirects to) goes
  through lib.outbound's address rules with `allowed_networks`, and the connection is pinned to the
  address that passed. Redirects are followed (at most MAX_REDIRECTS); an `Authorization` header is
  only ever sent to the origin it belongs to (the bearer token and Basic registry credentials to the
  mirror's origin, realm credentials to the realm's), and credentials never go over plain http to a
  realm when the mirror itself is https. Only a 401 from the mirror's own origin is answered: a redirect
  target (a CDN) asking for authentication names no realm that Wharf asks for a token, so it can never
  collect the mirror's credentials (UpstreamDenied instead).
- Integrity: a manifest's digest is computed from its bytes (capped at MAX_MANIFEST_BYTES) and checked
  against the reference when it is a digest, and against the upstream's Docker-Content-Digest; a blob
  is hashed as it streams and BlobStream raises DigestMismatch after its last chunk when it does not
  match, or UpstreamUnavailable when the body ends early or runs past its length.
- Errors are UpstreamError subclasses whose text is safe to show a client: no credentials, no token,
  nothing the upstream wrote beyond an error code. Nothing here logs credentials.
- Blocking I/O through urllib3 on the standard socket module: under gunicorn's gevent workers (monkey
  patched) every wait yields to the other greenlets; locks are created lazily so they are gevent's
  there and threading's elsewhere.

No Django here: the caller passes the Mirror and the allowed networks.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin

import urllib3

from lib import outbound
from lib.outbound import Network, Target
from oci.digests import DIGEST_RE
from oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    base_media_type,
)
from oci.names import NAME_PATTERN, TAG_RE
from registry.mirror.config import Mirror

logger = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the registry's own manifest limit
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 8192  # CDN redirects carry signed queries (S3 presigned URLs with session tokens run long)
BLOB_CHUNK = 1024 * 1024
TOKEN_DEFAULT_SECONDS = 60  # the token spec's default when expires_in is missing
TOKEN_MARGIN_SECONDS = 10  # a kept token is dropped this long before it expires
MAX_KEPT_TOKENS = 4096
MAX_FOREIGN_POOLS = 16
POOL_SIZE = 8
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
USER_AGENT = "wharf-mirror/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAME_RE = re.compile(NAME_PATTERN)
_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"})
_DENIED_CODES = frozenset({"DENIED", "UNAUTHORIZED"})


class UpstreamError(Exception):
    """The upstream could not give what was asked; the message is safe to show to a client."""


class UpstreamUnavailable(UpstreamError):
    """Connection refused, timeout, TLS failure, 5xx, a broken or short body."""


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamNotFound(UpstreamError):
    """404, or an *_UNKNOWN error code."""


class UpstreamDenied(UpstreamError):
    """401/403 after authenticating (or with no way to authenticate)."""


class UpstreamRefused(UpstreamError):
    """The outbound address rules refused a realm or redirect host (or sending credentials there)."""


class DigestMismatch(UpstreamError):
    """The bytes did not hash to the digest asked for."""


@dataclass(frozen=True)
class ManifestInfo:
    digest: str  # the manifest's digest: computed from its body (or, for HEAD, the upstream's, checked)
    media_type: str
    size: int


@dataclass(frozen=True)
class FetchedManifest(ManifestInfo):
    body: bytes


@dataclass(frozen=True)
class BlobInfo:
    digest: str  # the digest asked for (the upstream's Docker-Content-Digest, when it sends one, agrees)
    size: int | None  # Content-Length, when the upstream said it


# --- tokens, kept per process ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Challenge:
    scheme: str  # "bearer" or "basic"
    realm: str = ""
    service: str = ""
    scope: str = ""


class _TokenCache:
    """Bearer tokens per (mirror, realm, service, scope) until they expire, and per (mirror, repository)
    the challenge last seen, so the next request sends the kept token straight away."""

    def __init__(self) -> None:
        # Held only for dictionary updates, never across I/O: safe whether or not gevent patched it.
        self.guard = threading.Lock()
        self._tokens: OrderedDict[tuple, tuple[str, float]] = OrderedDict()
        self._hints: OrderedDict[tuple, _Challenge] = OrderedDict()
        self._fetching: dict[tuple, object] = {}

    def get(self, key: tuple) -> str | None:
        with self.guard:
            kept = self._tokens.get(key)
            if kept is None:
                return None
            if kept[1] <= time.monotonic():
                del self._tokens[key]
                return None
            return kept[0]

    def put(self, key: tuple, token: str, seconds: float) -> None:
        with self.guard:
            self._tokens[key] = (token, time.monotonic() + seconds)
            self._tokens.move_to_end(key)
            while len(self._tokens) > MAX_KEPT_TOKENS:
                self._tokens.popitem(last=False)

    def drop(self, key: tuple, token: str) -> None:
        with self.guard:
            kept = self._tokens.get(key)
            if kept is not None and kept[0] == token:
                del self._tokens[key]

    def hint(self, key: tuple) -> _Challenge | None:
        with self.guard:
            return self._hints.get(key)

    def remember(self, key: tuple, challenge: _Challenge) -> None:
        with self.guard:
            self._hints[key] = challenge
            self._hints.move_to_end(key)
            while len(self._hints) > MAX_KEPT_TOKENS:
                self._hints.popitem(last=False)

    def fetch_lock(self, key: tuple):
        """The lock one token fetch per key holds across its I/O: created on first use, so under gevent
        it is gevent's (a greenlet waiting for it lets the others run), a thread lock elsewhere."""
        with self.guard:
            lock = self._fetching.get(key)
            if lock is None:
                lock = self._fetching[key] = threading.Lock()
                if len(self._fetching) > MAX_KEPT_TOKENS:
                    for other in list(self._fetching)[: len(self._fetching) // 2]:
                        if other != key:
                            del self._fetching[other]
            return lock

    def clear(self) -> None:
        with self.guard:
            self._tokens.clear()
            self._hints.clear()


TOKENS = _TokenCache()


_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')


def parse_challenges(values: Iterable[str]) -> list[_Challenge]:
    """`Bearer realm="…",service="…",scope="…"` (and `Basic realm="…"`) from WWW-Authenticate headers."""
    found = []
    for value in values:
        rest = value.strip()
        while rest:
            scheme, _, rest = rest.partition(" ")
            scheme = scheme.strip().rstrip(",").lower()
            params: dict[str, str] = {}
            while True:
                match = _PARAM_RE.match(rest)
                if not match:
                    break
                quoted, bare = match.group(2), match.group(3)
                params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                rest = rest[match.end():]
            if scheme in ("bearer", "basic"):
                found.append(_Challenge(scheme=scheme, realm=params.get("realm", ""),
                                        service=params.get("service", ""), scope=params.get("scope", "")))
            if rest == value.strip():  # nothing parsed: give up on this header
                break
            rest = rest.strip()
    return found


# --- the client ------------------------------------------------------------------------------------


def _origin(target: Target) -> tuple[str, str, int]:
    return (target.scheme, target.host, target.port)


def _read_capped(response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether there was more."""
    chunks, size = [], 0
    while size <= limit:
        chunk = response.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], True


def _close(response) -> None:
    """Close a response whose body is not wanted (the connection is not reused)."""
    with contextlib.suppress(Exception):  # closing is best effort
        response.close()
        response.release_conn()


def _discard(response) -> None:
    """Read and drop a small body (a 401's, a redirect's) so its connection can be kept alive; close
    the connection instead when the body is large or broken."""
    try:
        _body, more = _read_capped(response, MAX_ERROR_BYTES)
    except (urllib3.exceptions.HTTPError, OSError):
        more = True
    (_close if more else _finish)(response)


def _finish(response) -> None:
    """Give back the connection of a response read to its end (kept alive for the next request)."""
    with contextlib.suppress(Exception):
        response.release_conn()


def _retry_after(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        return min(int(value.strip()), 86400)
    return None


def _error_codes(body: bytes) -> list[str]:
    try:
        errors = json.loads(body).get("errors") or []
        return [str(e.get("code", "")).upper()[:40] for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError):
        return []


class UpstreamClient:
    """One upstream registry (a Mirror). Thread-safe and greenlet-safe; keep one per mirror: it keeps
    its connections alive between requests (close() closes them)."""

    def __init__(self, mirror: Mirror, *, allowed_networks: Iterable[Network] = (),
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_blob_bytes: int | None = None) -> None:
        self.mirror = mirror
        self.allowed_networks = tuple(allowed_networks)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_blob_bytes = max_blob_bytes
        self._home = outbound.parse_url(mirror.url + "/v2/")
        self._key = (mirror.prefix, mirror.url, mirror.username or "")
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
        self._pools_guard = threading.Lock()  # never held across I/O
        self._basic = None
        if mirror.username is not None:
            raw = f"{mirror.username}:{mirror.password or ''}".encode()
            self._basic = "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"<UpstreamClient {self.mirror.prefix}={self.mirror.url}>"

    # --- public API ---

    def head_manifest(self, repository: str, reference: str) -> ManifestInfo:
        """The manifest's digest, media type and size without its body (a HEAD: Docker Hub does not
        count it as a pull). Falls back to a GET when the upstream names no digest."""
        path = self._manifest_path(repository, reference)
        response = self._request("HEAD", path, repository, {"Accept": ACCEPT})
        try:
            response.read()  # a HEAD has no body: this returns at once, and the connection stays alive
            _finish(response)
        except (urllib3.exceptions.HTTPError, OSError):
            _close(response)
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        media_type = base_media_type(response.headers.get("Content-Type"))
        length = response.headers.get("Content-Length", "")
        if not DIGEST_RE.fullmatch(digest) or media_type not in MANIFEST_TYPES or not length.isdigit():
            return self._info(self.get_manifest(repository, reference))
        if DIGEST_RE.fullmatch(reference) and digest != reference:
            raise DigestMismatch(f"{self._where(repository)}: the upstream named digest {digest} for {reference}")
        if int(length) > MAX_MANIFEST_BYTES:
            raise UpstreamError(f"{self._where(repository)}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        return ManifestInfo(digest=digest, media_type=media_type, size=int(length))

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        path = self._manifest_path(repository, reference)
        response = self._request("GET", path, repository, {"Accept": ACCEPT})
        try:
            body, more = _read_capped(response, MAX_MANIFEST_BYTES)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            _close(response)
            raise UpstreamUnavailable(f"{self._where(repository)}: {outbound.describe_failure(exc)}") from None
        if more:
            _close(response)
            raise UpstreamError(f"{self._where(repository)}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        _finish(response)
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) != len(body):
            raise UpstreamUnavailable(f"{self._where(repository)}: the manifest body was cut short")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if DIGEST_RE.fullmatch(reference):
            algorithm = reference.partition(":")[0]
            actual = digest if algorithm == "sha256" else f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
            if actual != reference:
                raise DigestMismatch(f"{self._where(repository)}: the manifest does not match its digest {reference}")
            digest = reference
        else:
            named = response.headers.get("Docker-Content-Digest", "").strip()
            if named.startswith("sha256:") and named != digest:
                raise DigestMismatch(f"{self._where(repository)}: the manifest of {reference} does not match "
                                     f"the digest the upstream named ({named})")
        media_type = base_media_type(response.headers.get("Content-Type"))
        if media_type not in MANIFEST_TYPES:
            media_type = _media_type_of(body) or media_type
        return FetchedManifest(digest=digest, media_type=media_type, size=len(body), body=body)

    def open_blob(self, repository: str, digest: str) -> BlobStream:
        """The blob's bytes as a stream (follows the upstream's redirect to its CDN). Use it as a context
        manager; iterating verifies the digest at the end."""
        if not DIGEST_RE.fullmatch(digest):
            raise ValueError("not a digest")
        self._check_name(repository)
        path = f"/v2/{repository}/blobs/{digest}"
        response = self._request("GET", path, repository, {"Accept": "*/*"})
        length = response.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() else None
        if size is not None and self.max_blob_bytes is not None and size > self.max_blob_bytes:
            _close(response)
            raise UpstreamError(f"{self._where(repository)}: the blob is larger than {self.max_blob_bytes} bytes")
        return BlobStream(response, digest=digest, size=size, where=self._where(repository),
                          max_bytes=self.max_blob_bytes)

    def head_blob(self, repository: str, digest: str) -> BlobInfo:
        """Whether the upstream has the blob, and its size, without its body: a HEAD (redirects followed).
        When the HEAD names no size, or a host it was redirected to refuses a HEAD (a URL signed for GET
        only), the blob's GET is opened for its headers and closed before any of the body is read."""
        if not DIGEST_RE.fullmatch(digest):
            raise ValueError("not a digest")
        self._check_name(repository)
        path = f"/v2/{repository}/blobs/{digest}"
        try:
            response = self._request("HEAD", path, repository, {"Accept": "*/*"})
        except (UpstreamNotFound, UpstreamRateLimited, UpstreamUnavailable, UpstreamRefused):
            raise
        except UpstreamError:  # denied or odd after a redirect: the GET below tells
            response = None
        if response is not None:
            try:
                response.read()
                _finish(response)
            except (urllib3.exceptions.HTTPError, OSError):
                _close(response)
        length = response.headers.get("Content-Length", "") if response is not None else ""
        if not length.isdigit():
            response = self._request("GET", path, repository, {"Accept": "*/*"})
            _close(response)  # the body is never read
            length = response.headers.get("Content-Length", "")
        named = response.headers.get("Docker-Content-Digest", "").strip()
        if named and DIGEST_RE.fullmatch(named) and named.partition(":")[0] == digest.partition(":")[0] \
                and named != digest:
            raise DigestMismatch(f"{self._where(repository)}: the upstream named digest {named} for {digest}")
        size = int(length) if length.isdigit() else None
        if size is not None and self.max_blob_bytes is not None and size > self.max_blob_bytes:
            raise UpstreamError(f"{self._where(repository)}: the blob is larger than {self.max_blob_bytes} bytes")
        return BlobInfo(digest=digest, size=size)

    def close(self) -> None:
        with self._pools_guard:
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close()

    # --- helpers ---

    @staticmethod
    def _info(manifest: FetchedManifest) -> ManifestInfo:
        return ManifestInfo(digest=manifest.digest, media_type=manifest.media_type, size=manifest.size)

    def _where(self, repository: str) -> str:
        return f"{self.mirror.display}/{repository}"

    @staticmethod
    def _check_name(repository: str) -> None:
        if not isinstance(repository, str) or len(repository) > 255 or not _NAME_RE.fullmatch(repository):
            raise ValueError("not a repository name")

    def _manifest_path(self, repository: str, reference: str) -> str:
        self._check_name(repository)
        if not (DIGEST_RE.fullmatch(reference) or TAG_RE.fullmatch(reference)):
            raise ValueError("not a tag or digest")
        return f"/v2/{repository}/manifests/{reference}"

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        """A pool to `target`'s origin: by name for the mirror's own origin, else pinned to the one
        address the outbound rules allowed (checked on every request)."""
        if _origin(target) == _origin(self._home):
            address, foreign = target.host, False
        else:
            try:
                address = outbound.resolve(target, self.allowed_networks)
            except outbound.DeliveryRefused as exc:
                raise UpstreamRefused(f"{self.mirror.display}: {exc}") from None
            except outbound.DeliveryFailed as exc:
                raise UpstreamUnavailable(f"{self.mirror.display}: {exc}") from None
            foreign = True
        key = (target.scheme, address, target.port, target.host)
        with self._pools_guard:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = outbound.connection_pool(
                    target, address, size=POOL_SIZE if not foreign else 2,
                    connect_timeout=self.connect_timeout, read_timeout=self.read_timeout)
                if foreign:  # CDN hosts come and go: keep the most recently used few
                    home = _origin(self._home)
                    others = [k for k in self._pools if k != key and (k[0], k[3], k[2]) != home]
                    while len(others) > MAX_FOREIGN_POOLS:
                        self._pools.pop(others.pop(0)).close()
            self._pools.move_to_end(key)
        return pool

    def _open(self, method: str, url: str, headers: dict[str, str], *,
              authorization: tuple[tuple[str, str, int], str] | None) -> tuple[urllib3.BaseHTTPResponse, Target]:
        """Send one request, following redirects; `authorization` = (origin, header value) is sent
        only to that origin. Returns the last response (body unread) and where it came from."""
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                target = outbound.parse_url(url, max_length=MAX_URL_LENGTH)
            except outbound.DeliveryRefused as exc:
                raise UpstreamRefused(f"{self.mirror.display}: {exc}") from None
            pool = self._pool(target)
            sent = {"User-Agent": USER_AGENT, **headers, "Host": target.host_header}
            if authorization is not None and authorization[0] == _origin(target):
                sent["Authorization"] = authorization[1]
            try:
                response = pool.urlopen(
                    method, target.path, headers=sent, redirect=False, retries=False, preload_content=False,
                    assert_same_host=False, release_conn=False, decode_content=False,
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise UpstreamUnavailable(
                    f"{self.mirror.display}: {target.host_header}: {outbound.describe_failure(exc)}") from None
            location = response.headers.get("Location")
            if response.status in REDIRECT_STATUSES and location:
                _discard(response)
                url = urljoin(url, location.strip())
                if method not in ("GET", "HEAD"):
                    raise UpstreamError(f"{self.mirror.display}: unexpected redirect")
                continue
            return response, target
        raise UpstreamUnavailable(f"{self.mirror.display}: more than {MAX_REDIRECTS} redirects")

    def _request(self, method: str, path: str, repository: str, headers: dict[str, str]):
        """A registry request with authentication; returns a 2xx response (body unread) or raises."""
        url = self.mirror.url + path
        hint_key = (*self._key, repository)
        hint = TOKENS.hint(hint_key)
        authorization, token_key = None, None
        if hint is not None:
            authorization, token_key = self._kept_authorization(hint, repository)
        response, target = self._open(method, url, headers, authorization=authorization)
        if response.status == 401 and _origin(target) != _origin(self._home):
            self._refuse_foreign_challenge(response, target, repository)
        if response.status == 401:
            challenges = parse_challenges(response.headers.getlist("WWW-Authenticate"))
            _discard(response)
            challenge = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
            if challenge is None:
                challenge = next((c for c in challenges if c.scheme == "basic"), None)
            if challenge is None:
                raise UpstreamDenied(f"{self._where(repository)}: the upstream asks for authentication it does "
                                     "not describe")
            if token_key is not None and authorization is not None:
                TOKENS.drop(token_key, authorization[7:])
            authorization = self._answer(challenge, repository, rejected=authorization)
            TOKENS.remember(hint_key, challenge)
            response, target = self._open(method, url, headers, authorization=authorization)
            if response.status == 401 and _origin(target) != _origin(self._home):
                self._refuse_foreign_challenge(response, target, repository)
            if response.status in (401, 403):
                _discard(response)
                raise UpstreamDenied(f"{self._where(repository)}: the upstream refused access "
                                     f"({response.status}{self._credential_note()})")
        if 200 <= response.status < 300:
            return response
        self._fail(response, repository)

    def _refuse_foreign_challenge(self, response, target: Target, repository: str):
        """A host the upstream redirected to (a CDN) asks for authentication: it is never answered. Only
        the upstream origin's own challenge names the realm that gets a token request (and the mirror's
        credentials); a redirect target naming one could collect them."""
        _discard(response)
        raise UpstreamDenied(f"{self._where(repository)}: {target.host_header}, where the upstream redirected, "
                             "asks for authentication (not answered)")

    def _credential_note(self) -> str:
        return ", with the mirror's credentials" if self._basic else ", anonymously"

    def _kept_authorization(self, hint: _Challenge, repository: str):
        if hint.scheme == "basic":
            return ((_origin(self._home), self._basic) if self._basic else None), None
        key = self._token_key(hint, repository)
        token = TOKENS.get(key)
        return ((_origin(self._home), f"Bearer {token}") if token else None), key

    def _token_key(self, challenge: _Challenge, repository: str) -> tuple:
        return (*self._key, challenge.realm, challenge.service, challenge.scope or f"repository:{repository}:pull")

    def _answer(self, challenge: _Challenge, repository: str, *, rejected):
        """The Authorization to retry with after `challenge`."""
        home = _origin(self._home)
        if challenge.scheme == "basic":
            if self._basic is None:
                raise UpstreamDenied(f"{self._where(repository)}: the upstream requires credentials and the "
                                     "mirror has none")
            if rejected is not None and rejected[1] == self._basic:
                raise UpstreamDenied(f"{self._where(repository)}: the upstream refused the mirror's credentials")
            return (home, self._basic)
        key = self._token_key(challenge, repository)
        rejected_token = rejected[1][7:] if rejected is not None and rejected[1].startswith("Bearer ") else None
        token = TOKENS.get(key)
        if token is None or token == rejected_token:
            with TOKENS.fetch_lock(key):
                token = TOKENS.get(key)  # another request may have fetched it meanwhile
                if token is None or token == rejected_token:
                    token, seconds = self._fetch_token(challenge, repository)
                    TOKENS.put(key, token, seconds)
                    logger.debug("mirror %s: new token for %s, kept %.0f s", self.mirror.prefix,
                                 challenge.scope or repository, seconds)
        return (home, f"Bearer {token}")

    def _fetch_token(self, challenge: _Challenge, repository: str) -> tuple[str, float]:
        realm = challenge.realm
        try:
            realm_target = outbound.parse_url(realm, max_length=MAX_URL_LENGTH)
        except outbound.DeliveryRefused as exc:
            raise UpstreamRefused(f"{self.mirror.display}: the token realm: {exc}") from None
        query = []
        if challenge.service:
            query.append(("service", challenge.service))
        for scope in (challenge.scope or f"repository:{repository}:pull").split():
            query.append(("scope", scope))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        authorization = None
        if self._basic is not None:
            if realm_target.scheme == "http" and self._home.scheme == "https":
                raise UpstreamRefused(f"{self.mirror.display}: the token realm is plain http; the mirror's "
                                      "credentials are not sent there")
            authorization = (_origin(realm_target), self._basic)
        response, _target = self._open("GET", url, {"Accept": "application/json"}, authorization=authorization)
        try:
            body, more = _read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            _close(response)
            raise UpstreamUnavailable(f"{self.mirror.display}: the token service: "
                                      f"{outbound.describe_failure(exc)}") from None
        (_close if more else _finish)(response)
        status = response.status
        if status in (401, 403):
            raise UpstreamDenied(f"{self.mirror.display}: the token service refused "
                                 f"{'the mirror' + chr(39) + 's credentials' if self._basic else 'anonymous access'}"
                                 f" ({status})")
        if status == 429:
            raise UpstreamRateLimited(f"{self.mirror.display}: the token service is rate limiting (429)",
                                      _retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise UpstreamUnavailable(f"{self.mirror.display}: the token service answered {status}")
        if status != 200 or more:
            raise UpstreamError(f"{self.mirror.display}: the token service answered {status}")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
            seconds = answer.get("expires_in", TOKEN_DEFAULT_SECONDS)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < 10**9:
                seconds = TOKEN_DEFAULT_SECONDS
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or any(ch.isspace() or ord(ch) < 33 for ch in token):
            raise UpstreamError(f"{self.mirror.display}: the token service gave no usable token")
        return token, max(1.0, seconds - min(TOKEN_MARGIN_SECONDS, seconds / 10))

    def _fail(self, response, repository: str):
        status = response.status
        try:
            body, more = _read_capped(response, MAX_ERROR_BYTES)
        except (urllib3.exceptions.HTTPError, OSError):
            body, more = b"", True
        (_close if more else _finish)(response)
        codes = _error_codes(body)
        where = self._where(repository)
        shown = f" {codes[0]}" if codes and re.fullmatch(r"[A-Z_]{1,40}", codes[0]) else ""
        if status == 429 or "TOOMANYREQUESTS" in codes:
            raise UpstreamRateLimited(f"{where}: the upstream is rate limiting (429{shown})",
                                      _retry_after(response.headers.get("Retry-After")))
        if status == 404 or _NOT_FOUND_CODES.intersection(codes):
            raise UpstreamNotFound(f"{where}: not found upstream ({status}{shown})")
        if status >= 500:
            raise UpstreamUnavailable(f"{where}: the upstream answered {status}{shown}")
        if status in (401, 403) or _DENIED_CODES.intersection(codes):
            raise UpstreamDenied(f"{where}: the upstream refused access ({status}{shown})")
        raise UpstreamError(f"{where}: the upstream answered {status}{shown}")


def _media_type_of(body: bytes) -> str:
    try:
        value = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        return ""
    return value if value in MANIFEST_TYPES else ""


class BlobStream:
    """A blob's body from the upstream: iterate for chunks (about BLOB_CHUNK bytes each). After the last
    chunk it raises DigestMismatch when the bytes do not hash to the digest asked for, and
    UpstreamUnavailable when the stream breaks or is shorter or longer than its Content-Length.
    A context manager: leaving it closes the connection (or keeps it alive when read to the end)."""

    def __init__(self, response, *, digest: str, size: int | None, where: str, max_bytes: int | None) -> None:
        self._response = response
        self.digest = digest
        self.size = size
        self._where = where
        self._max_bytes = max_bytes
        self._algorithm = digest.partition(":")[0]
        self.received = 0
        self._done = False
        self._closed = False

    def __enter__(self) -> BlobStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        if self._closed or self.received:
            raise RuntimeError("a BlobStream can be read once")
        hasher = hashlib.new(self._algorithm)
        response = self._response
        try:
            while True:
                try:
                    chunk = response.read(BLOB_CHUNK)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise UpstreamUnavailable(f"{self._where}: the blob stream broke after {self.received} bytes: "
                                              f"{outbound.describe_failure(exc)}") from None
                if not chunk:
                    break
                self.received += len(chunk)
                if self.size is not None and self.received > self.size:
                    raise UpstreamUnavailable(f"{self._where}: the blob is longer than its {self.size} bytes")
                if self._max_bytes is not None and self.received > self._max_bytes:
                    raise UpstreamError(f"{self._where}: the blob is larger than {self._max_bytes} bytes")
                hasher.update(chunk)
                yield chunk
            if self.size is not None and self.received != self.size:
                raise UpstreamUnavailable(f"{self._where}: the blob ended after {self.received} of {self.size} bytes")
            actual = f"{self._algorithm}:{hasher.hexdigest()}"
            if actual != self.digest:
                raise DigestMismatch(f"{self._where}: the blob's bytes hash to {actual}, not {self.digest}")
            self._done = True
        finally:
            if not self._done:
                self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._done:
            _finish(self._response)
        else:
            _close(self._response)
