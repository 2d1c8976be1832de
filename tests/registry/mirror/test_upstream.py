"""The mirror's upstream client (registry/mirror/upstream.py) against real upstreams on loopback.

The main upstream is Debian's docker-registry 2.8 with token auth, served by a token server the test
runs (tests/registry/mirror/upstreams.py), holding images skopeo copied in. Answers a real registry
would not give (429, 5xx, tampered bytes, redirects) come from a scripted server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import threading

import pytest

from lib.outbound import parse_networks
from registry.mirror import upstream
from registry.mirror.config import Mirror
from registry.mirror.upstream import (
    DigestMismatch,
    UpstreamClient,
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamUnavailable,
)
from tests.registry.mirror.upstreams import (
    MIRROR_PASSWORD,
    MIRROR_USER,
    OCI_INDEX,
    OCI_MANIFEST,
    Scripted,
    TestCA,
    TokenServer,
    push,
    reply,
    start_token_registry,
    write_index,
    write_layout,
)

LOOPBACK = parse_networks(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def upstream_registry(tmp_path_factory):
    """docker-registry with token auth, holding library/alpine:latest and private/app:v1."""
    root = tmp_path_factory.mktemp("upstream")
    tokens = TokenServer()
    registry = start_token_registry(root / "registry", tokens)
    try:
        layout = root / "layout"
        registry.images = {
            "library/alpine": write_layout(layout, "latest"),
            "private/app": write_layout(layout, "v1", layer_sizes=(2000,)),
        }
        registry.index = write_index(layout, "multi")
        push(layout, "latest", registry, "library/alpine")
        push(layout, "v1", registry, "private/app")
        push(layout, "multi", registry, "library/alpine")
        yield registry
    finally:
        registry.stop()
        tokens.close()


@pytest.fixture(autouse=True)
def _fresh_tokens():
    """Kept tokens are process memory: every test starts without any."""
    upstream.TOKENS.clear()
    yield
    upstream.TOKENS.clear()


@pytest.fixture
def tokens(upstream_registry):
    upstream_registry.tokens.clear()
    return upstream_registry.tokens


@pytest.fixture
def scripted():
    server = Scripted()
    yield server
    server.close()


def mirror_of(url: str, *, username=None, password=None, prefix="dockerhub") -> Mirror:
    return Mirror(prefix=prefix, url=url, username=username, password=password)


def client_for(url: str, **kwargs) -> UpstreamClient:
    credentials = {k: kwargs.pop(k) for k in ("username", "password") if k in kwargs}
    kwargs.setdefault("allowed_networks", LOOPBACK)  # the realm is on another port: another origin
    return UpstreamClient(mirror_of(url, **credentials), **kwargs)


def read_all(stream) -> bytes:
    with stream:
        return b"".join(stream)


# --- against docker-registry with token auth ---------------------------------------------------------


def test_anonymous_token_flow_fetches_manifests_and_blobs(upstream_registry, tokens):
    image = upstream_registry.images["library/alpine"]
    client = client_for(upstream_registry.url)
    manifest = client.get_manifest("library/alpine", "latest")
    assert manifest.body == image.manifest
    assert manifest.digest == image.digest == "sha256:" + hashlib.sha256(manifest.body).hexdigest()
    assert (manifest.media_type, manifest.size) == (OCI_MANIFEST, len(image.manifest))
    [token_request] = tokens.token_requests()
    assert "Authorization" not in token_request.headers
    assert token_request.query["scope"] == ["repository:library/alpine:pull"]
    assert token_request.query["service"] == ["wharf-upstream"]

    info = client.head_manifest("library/alpine", "latest")
    assert (info.digest, info.media_type, info.size) == (image.digest, OCI_MANIFEST, len(image.manifest))
    assert client.get_manifest("library/alpine", image.digest).body == image.manifest
    for digest in image.layers:
        stream = client.open_blob("library/alpine", digest)
        assert stream.size == len(image.blobs[digest])
        with stream:
            chunks = list(stream)
        assert b"".join(chunks) == image.blobs[digest]
        assert max(len(c) for c in chunks) <= upstream.BLOB_CHUNK
    assert len(tokens.token_requests()) == 1  # the token was kept and reused


def test_multi_arch_index_and_its_children(upstream_registry, tokens):
    index, children = upstream_registry.index
    client = client_for(upstream_registry.url)
    fetched = client.get_manifest("library/alpine", "multi")
    assert (fetched.body, fetched.digest, fetched.media_type) == (index.manifest, index.digest, OCI_INDEX)
    assert client.head_manifest("library/alpine", "multi").media_type == OCI_INDEX
    for child in children:
        assert client.get_manifest("library/alpine", child.digest).body == child.manifest
        [layer] = child.layers
        assert read_all(client.open_blob("library/alpine", layer)) == child.blobs[layer]


def test_token_is_reused_per_repository_and_shared_by_clients(upstream_registry, tokens):
    first = client_for(upstream_registry.url)
    first.head_manifest("library/alpine", "latest")
    second = client_for(upstream_registry.url)  # another client of the same mirror: same process cache
    second.get_manifest("library/alpine", "latest")
    second.head_manifest("library/alpine", "latest")
    assert len(tokens.token_requests()) == 1
    with pytest.raises(UpstreamNotFound):
        second.head_manifest("library/other", "latest")  # another repository, another scope
    assert [r.query["scope"] for r in tokens.token_requests()] == [
        ["repository:library/alpine:pull"], ["repository:library/other:pull"]]
    other_mirror = client_for(upstream_registry.url, username=MIRROR_USER, password=MIRROR_PASSWORD)
    other_mirror.head_manifest("library/alpine", "latest")  # credentials: not the anonymous token
    assert len(tokens.token_requests()) == 3


def test_an_expired_token_is_fetched_again(upstream_registry, tokens, monkeypatch):
    client = client_for(upstream_registry.url)
    client.head_manifest("library/alpine", "latest")
    now = upstream.time.monotonic()
    monkeypatch.setattr(upstream.time, "monotonic", lambda: now + 300)  # expires_in is 300
    client.head_manifest("library/alpine", "latest")
    assert len(tokens.token_requests()) == 2


def test_basic_credentials_go_to_the_realm_only(upstream_registry, tokens):
    image = upstream_registry.images["private/app"]
    with pytest.raises(UpstreamDenied, match="anonymously"):
        client_for(upstream_registry.url).get_manifest("private/app", "v1")
    tokens.clear()
    client = client_for(upstream_registry.url, username=MIRROR_USER, password=MIRROR_PASSWORD)
    assert client.get_manifest("private/app", "v1").body == image.manifest
    [layer] = image.layers
    assert read_all(client.open_blob("private/app", layer)) == image.blobs[layer]
    [token_request] = tokens.token_requests()
    expected = "Basic " + base64.b64encode(f"{MIRROR_USER}:{MIRROR_PASSWORD}".encode()).decode()
    assert token_request.headers["Authorization"] == expected


def test_wrong_credentials_are_denied_without_showing_them(upstream_registry, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(upstream_registry.url, username=MIRROR_USER, password="wrong-password-xyz")
    with pytest.raises(UpstreamDenied) as info:
        client.get_manifest("private/app", "v1")
    assert "credentials" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(client), repr(client.mirror), caplog.text):
        assert "wrong-password-xyz" not in text
        assert base64.b64encode(f"{MIRROR_USER}:wrong-password-xyz".encode()).decode() not in text


def test_missing_manifest_and_blob_are_not_found(upstream_registry, tokens):
    client = client_for(upstream_registry.url)
    with pytest.raises(UpstreamNotFound, match="MANIFEST_UNKNOWN"):
        client.get_manifest("library/alpine", "nope")
    with pytest.raises(UpstreamNotFound):
        client.head_manifest("library/alpine", "nope")
    with pytest.raises(UpstreamNotFound, match="BLOB_UNKNOWN"):
        client.open_blob("library/alpine", "sha256:" + "0" * 64)


def test_head_blob_tells_the_size_without_the_body(upstream_registry, tokens):
    image = upstream_registry.images["library/alpine"]
    client = client_for(upstream_registry.url)
    for digest in image.layers:
        info = client.head_blob("library/alpine", digest)
        assert (info.digest, info.size) == (digest, len(image.blobs[digest]))
    with pytest.raises(UpstreamNotFound):
        client.head_blob("library/alpine", "sha256:" + "0" * 64)


def test_a_realm_elsewhere_follows_the_outbound_rules(upstream_registry, tokens):
    """The realm is on another port (another origin): without loopback among the allowed networks it
    is refused, and the registry itself (the operator's choice) is still reached."""
    client = client_for(upstream_registry.url, allowed_networks=())
    with pytest.raises(UpstreamRefused, match="loopback"):
        client.get_manifest("library/alpine", "latest")
    assert tokens.token_requests() == []


def test_concurrent_requests_fetch_one_token(upstream_registry, tokens):
    client = client_for(upstream_registry.url)
    image = upstream_registry.images["library/alpine"]
    results, errors = [], []

    def pull():
        try:
            results.append(client.get_manifest("library/alpine", "latest").digest)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and results == [image.digest] * 8
    assert len(tokens.token_requests()) == 1


def test_connection_refused_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening
        with pytest.raises(UpstreamUnavailable):
            client_for(f"http://127.0.0.1:{port}").get_manifest("library/alpine", "latest")


# --- answers only a scripted server gives ------------------------------------------------------------


MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
BLOB = bytes(range(256)) * 9000  # more than two chunks
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def test_429_is_rate_limited_with_retry_after(scripted):
    scripted.script = lambda h: reply(h, 429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow"}]}',
                                      {"Retry-After": "7", "Content-Type": "application/json"})
    with pytest.raises(UpstreamRateLimited) as info:
        client_for(scripted.url).get_manifest("library/alpine", "latest")
    assert info.value.retry_after == 7


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(scripted, status):
    scripted.script = lambda h: reply(h, status, b"oops")
    with pytest.raises(UpstreamUnavailable, match=str(status)):
        client_for(scripted.url).head_manifest("library/alpine", "latest")


def test_tampered_blob_is_a_digest_mismatch_after_the_last_chunk(scripted):
    tampered = BLOB[:-1] + b"X"
    scripted.script = lambda h: reply(h, 200, tampered)
    stream = client_for(scripted.url).open_blob("library/alpine", BLOB_DIGEST)
    received = []
    with stream, pytest.raises(DigestMismatch):
        for chunk in stream:
            received.append(chunk)
    assert b"".join(received) == tampered  # every chunk came through before the verdict


def test_short_blob_is_unavailable(scripted):
    scripted.script = lambda h: reply(h, 200, BLOB[:1000], length=len(BLOB))
    with pytest.raises(UpstreamUnavailable):
        read_all(client_for(scripted.url).open_blob("library/alpine", BLOB_DIGEST))


def test_blob_longer_than_asked_is_refused(scripted):
    scripted.script = lambda h: reply(h, 200, BLOB + b"more")
    client = client_for(scripted.url)
    with pytest.raises(DigestMismatch):
        read_all(client.open_blob("library/alpine", BLOB_DIGEST))
    # Bytes past the Content-Length are not the body, and the connection they linger on is not reused.
    scripted.script = lambda h: reply(h, 200, BLOB + b"HTTP/1.1 200 OK\r\n\r\n", length=len(BLOB))
    assert read_all(client.open_blob("library/alpine", BLOB_DIGEST)) == BLOB
    scripted.script = lambda h: reply(h, 200, MANIFEST, {"Content-Type": OCI_MANIFEST})
    assert client.get_manifest("library/alpine", "latest").body == MANIFEST


def test_blob_over_the_size_cap_is_refused(scripted):
    scripted.script = lambda h: reply(h, 200, BLOB)
    with pytest.raises(UpstreamError, match="larger"):
        client_for(scripted.url, max_blob_bytes=1000).open_blob("library/alpine", BLOB_DIGEST)


def test_manifest_not_matching_its_digest_reference(scripted):
    scripted.script = lambda h: reply(h, 200, MANIFEST + b" ", {"Content-Type": OCI_MANIFEST})
    client = client_for(scripted.url)
    with pytest.raises(DigestMismatch):
        client.get_manifest("library/alpine", MANIFEST_DIGEST)
    scripted.script = lambda h: reply(h, 200, MANIFEST + b" ",
                                      {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST})
    with pytest.raises(DigestMismatch):
        client.get_manifest("library/alpine", "latest")  # by tag: the digest the upstream named
    with pytest.raises(DigestMismatch):
        client.head_manifest("library/alpine", "sha256:" + "1" * 64)


def test_oversized_manifest_is_refused(scripted):
    scripted.script = lambda h: reply(h, 200, b"{" + b" " * upstream.MAX_MANIFEST_BYTES + b"}",
                                      {"Content-Type": OCI_MANIFEST})
    with pytest.raises(UpstreamError, match="larger"):
        client_for(scripted.url).get_manifest("library/alpine", "latest")


def _registry_with_cdn(registry: Scripted, cdn: Scripted, cdn_host: str) -> None:
    """`registry` asks for a bearer token from its own /token, then redirects blobs to `cdn`."""
    cdn.script = lambda h: reply(h, 200, BLOB)

    def script(h):
        if h.path.startswith("/token"):
            return reply(h, 200, json.dumps({"token": "tok-abc", "expires_in": 300}).encode())
        if h.headers.get("Authorization") != "Bearer tok-abc":
            return reply(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="{registry.url}/token",'
                                                             'service="svc",scope="repository:library/alpine:pull"'})
        return reply(h, 307, b"", {"Location": f"http://{cdn_host}:{cdn.port}/cdn/blob?sig=1"})

    registry.script = script


def test_redirect_to_another_host_is_refused_unless_allowed(scripted):
    cdn = Scripted()
    try:
        _registry_with_cdn(scripted, cdn, "localhost")
        with pytest.raises(UpstreamRefused):
            client_for(scripted.url, allowed_networks=()).open_blob("library/alpine", BLOB_DIGEST)
        assert cdn.requests == []
        client = client_for(scripted.url, allowed_networks=LOOPBACK, username="u", password="p-secret")
        assert read_all(client.open_blob("library/alpine", BLOB_DIGEST)) == BLOB
        [cdn_request] = cdn.requests
        assert cdn_request.path == "/cdn/blob?sig=1"
        assert "Authorization" not in cdn_request.headers  # neither the token nor the credentials
        assert cdn_request.headers["Host"] == f"localhost:{cdn.port}"
        blob_requests = [r for r in scripted.requests if "/blobs/" in r.path]
        assert blob_requests[-1].headers["Authorization"] == "Bearer tok-abc"
    finally:
        cdn.close()


def test_head_blob_sends_a_head_only(scripted):
    scripted.script = lambda h: reply(h, 200, BLOB, {"Docker-Content-Digest": BLOB_DIGEST})
    info = client_for(scripted.url).head_blob("library/alpine", BLOB_DIGEST)
    assert info.size == len(BLOB) and [r.method for r in scripted.requests] == ["HEAD"]


def test_head_blob_naming_another_digest_is_a_mismatch(scripted):
    other = "sha256:" + "1" * 64
    scripted.script = lambda h: reply(h, 200, BLOB, {"Docker-Content-Digest": other})
    with pytest.raises(DigestMismatch):
        client_for(scripted.url).head_blob("library/alpine", BLOB_DIGEST)


def test_head_blob_over_the_size_cap_is_refused(scripted):
    scripted.script = lambda h: reply(h, 200, BLOB)
    with pytest.raises(UpstreamError, match="larger"):
        client_for(scripted.url, max_blob_bytes=1000).head_blob("library/alpine", BLOB_DIGEST)


def test_head_blob_refused_by_a_cdn_opens_the_get_for_its_headers_only(scripted):
    """A CDN URL signed for GET refuses a HEAD: the GET is opened for its Content-Length and closed."""
    cdn = Scripted()
    try:
        _registry_with_cdn(scripted, cdn, "127.0.0.1")
        cdn.script = lambda h: reply(h, 403, b"signature") if h.command == "HEAD" else reply(h, 200, BLOB)
        info = client_for(scripted.url).head_blob("library/alpine", BLOB_DIGEST)
        assert info.size == len(BLOB)
        assert [r.method for r in cdn.requests] == ["HEAD", "GET"]
    finally:
        cdn.close()


def test_the_mirror_itself_is_reached_whatever_its_address(scripted):
    """The operator named it: no allowed networks needed for loopback, unlike a realm or CDN elsewhere."""
    scripted.script = lambda h: reply(h, 200, MANIFEST, {"Content-Type": OCI_MANIFEST})
    client = client_for(scripted.url, allowed_networks=())
    assert client.get_manifest("library/alpine", "latest").digest == MANIFEST_DIGEST


def test_a_kept_token_is_sent_at_once(scripted):
    """A warm mirror costs the upstream no 401 round trip and the realm nothing."""
    cdn = Scripted()
    try:
        _registry_with_cdn(scripted, cdn, "127.0.0.1")
        client = client_for(scripted.url)
        assert read_all(client.open_blob("library/alpine", BLOB_DIGEST)) == BLOB
        assert [r.path.split("?")[0] for r in scripted.requests] == [
            f"/v2/library/alpine/blobs/{BLOB_DIGEST}", "/token", f"/v2/library/alpine/blobs/{BLOB_DIGEST}"]
        scripted.clear()
        assert read_all(client.open_blob("library/alpine", BLOB_DIGEST)) == BLOB
        [again] = scripted.requests
        assert again.headers["Authorization"] == "Bearer tok-abc"
    finally:
        cdn.close()


@pytest.fixture
def test_ca(tmp_path, monkeypatch):
    """A CA the process trusts for this test (OpenSSL reads SSL_CERT_FILE for every new connection)."""
    ca = TestCA(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return ca


def test_https_upstream_and_cdn_are_verified(test_ca):
    """An https mirror reached by IP (certificate for that IP) redirecting blobs to an https CDN by name,
    pinned to its checked address and still verified against its name."""
    cdn = Scripted(tls=test_ca.server_context("localhost"))
    home = Scripted(tls=test_ca.server_context("127.0.0.1"))
    try:
        _registry_with_cdn(home, cdn, "localhost")
        cdn_url = f"https://localhost:{cdn.port}/cdn/blob?sig=1"
        home_script = home.script
        home.script = lambda h: (reply(h, 307, b"", {"Location": cdn_url}) if "/blobs/" in h.path
                                 and h.headers.get("Authorization") == "Bearer tok-abc" else home_script(h))
        client = client_for(home.url, allowed_networks=LOOPBACK)
        assert read_all(client.open_blob("library/alpine", BLOB_DIGEST)) == BLOB
        assert len(cdn.requests) == 1
    finally:
        cdn.close()
        home.close()


def test_https_certificate_for_another_name_is_unavailable(test_ca):
    server = Scripted(tls=test_ca.server_context("other.example"))
    try:
        server.script = lambda h: reply(h, 200, MANIFEST, {"Content-Type": OCI_MANIFEST})
        with pytest.raises(UpstreamUnavailable, match="TLS"):
            client_for(server.url).get_manifest("library/alpine", "latest")
        assert server.requests == []
    finally:
        server.close()


def test_redirects_are_bounded(scripted):
    scripted.script = lambda h: reply(h, 302, b"", {"Location": h.path})
    with pytest.raises(UpstreamUnavailable, match="redirects"):
        client_for(scripted.url).open_blob("library/alpine", BLOB_DIGEST)
    assert len(scripted.requests) == upstream.MAX_REDIRECTS + 1


def test_credentials_never_reach_a_plain_http_realm_of_an_https_mirror(scripted):
    mirror = Mirror(prefix="dockerhub", url="https://127.0.0.1:1", username="u", password="p-secret")
    client = UpstreamClient(mirror, allowed_networks=LOOPBACK)
    challenge = upstream._Challenge(scheme="bearer", realm=f"{scripted.url}/token", service="s")
    with pytest.raises(UpstreamRefused, match="plain http"):
        client._fetch_token(challenge, "library/alpine")
    assert scripted.requests == []


def test_basic_challenge_is_answered_with_the_credentials(scripted):
    expected = "Basic " + base64.b64encode(b"u:p-secret").decode()

    def script(h):
        if h.headers.get("Authorization") != expected:
            return reply(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="upstream"'})
        return reply(h, 200, MANIFEST, {"Content-Type": OCI_MANIFEST})

    scripted.script = script
    with pytest.raises(UpstreamDenied, match="no"):
        client_for(scripted.url).get_manifest("library/alpine", "latest")
    client = client_for(scripted.url, username="u", password="p-secret")
    assert client.get_manifest("library/alpine", "latest").digest == MANIFEST_DIGEST
    scripted.clear()
    client.get_manifest("library/alpine", "latest")  # the kept hint sends them at once
    assert len(scripted.requests) == 1


def test_challenge_parsing():
    [bearer, basic] = upstream.parse_challenges([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull",error="insufficient_scope"',
        'Basic realm="x \\"y\\""',
    ])
    assert (bearer.scheme, bearer.realm, bearer.service, bearer.scope) == (
        "bearer", "https://auth.docker.io/token", "registry.docker.io", "repository:library/alpine:pull")
    assert (basic.scheme, basic.realm) == ("basic", 'x "y"')
    assert upstream.parse_challenges(["garbage", ""]) == []


@pytest.mark.parametrize("repository, reference", [
    ("../etc", "latest"), ("library/alpine", "../x"), ("Library/alpine", "latest"), ("library/alpine", "a b"),
])
def test_names_are_checked_before_anything_is_sent(scripted, repository, reference):
    with pytest.raises(ValueError):
        client_for(scripted.url).get_manifest(repository, reference)
    assert scripted.requests == []


GEVENT_SCRIPT = """
import sys
from gevent import monkey
monkey.patch_all()
import gevent
from lib.outbound import parse_networks
from registry.mirror.config import Mirror
from registry.mirror.upstream import UpstreamClient

url, repository, digest = sys.argv[1:4]
client = UpstreamClient(Mirror(prefix="dockerhub", url=url), allowed_networks=parse_networks(["127.0.0.0/8"]))
state = {"now": 0, "most": 0}

def pull():  # overlaps with the others only if waiting on the upstream yields to the loop
    state["now"] += 1
    state["most"] = max(state["most"], state["now"])
    try:
        manifest = client.get_manifest(repository, "latest")
        with client.open_blob(repository, digest) as stream:
            return manifest.digest, sum(len(chunk) for chunk in stream)
    finally:
        state["now"] -= 1

jobs = [gevent.spawn(pull) for _ in range(6)]
gevent.joinall(jobs, timeout=60, raise_error=True)
print(len({job.value for job in jobs}), state["most"])
"""


def test_works_under_gevent(upstream_registry, tokens):
    """In a gevent-patched process (gunicorn's workers): greenlets share one token fetch, and waiting
    on the upstream lets other greenlets run."""
    import subprocess
    import sys
    from pathlib import Path

    image = upstream_registry.images["library/alpine"]
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT, upstream_registry.url, "library/alpine",
                           image.layers[0]], capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "6"]  # one answer; all six were in flight at once
    assert len(tokens.token_requests()) == 1
