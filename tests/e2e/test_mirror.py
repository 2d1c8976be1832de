"""Wharf as a pull-through cache of a real registry (issue 22), end to end.

The upstream is Debian's docker-registry with token auth (tests/registry/mirror/upstreams.py) behind a
counting proxy of the test's own (every request the mirror makes is recorded; it can answer 429, break
a blob's bytes, or stop). A live Wharf is configured with HUB_MIRRORS=dockerhub=<proxy>, anonymous
mirror pulls, a one-second tag TTL and a mirror host. podman, configured with Wharf as docker.io's
mirror, pulls a multi-arch image through it; skopeo pulls in parallel; raw HTTP checks host mode.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.clients import ContainerClients
from tests.live import free_port, start_hub
from tests.registry.mirror.upstreams import (
    PUSH_PASSWORD,
    PUSH_USER,
    TokenServer,
    start_token_registry,
    write_layout,
)

pytest_plugins = ["tests.e2e.images"]

PREFIX = "dockerhub"
MIRROR_HOST = "mirror.wharf.test"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class CountingProxy:
    """Forwards to the upstream registry, counting each (method, path) it answered with a 2xx (a 401
    that makes the client fetch a token is not a fetch); `mode` may be "429", and `tamper` holds blob
    digests whose bytes it changes (same length)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: Counter[tuple[str, str]] = Counter()
        self.mode = "forward"
        self.tamper: set[str] = set()
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                try:
                    owner.forward(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        if self.mode == "429":
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            handler.send_response(429)
            handler.send_header("Retry-After", "60")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body if handler.command == "GET" else b"")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        answer = requests.request(handler.command, self.upstream + handler.path, headers=headers,
                                  allow_redirects=False, timeout=30)
        body = answer.content
        with self.lock:
            self.log.append((handler.command, handler.path, answer.status_code))
        if answer.status_code < 300:
            with self.lock:
                self.seen[(handler.command, handler.path.split("?")[0])] += 1
        digest = handler.path.rsplit("/", 1)[-1]
        if "/blobs/" in handler.path and digest in self.tamper and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        handler.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in HOP_HEADERS:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body) if handler.command != "HEAD"
                                                  else answer.headers.get("Content-Length", "0")))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def blob_fetches(self, repository: str, digest: str) -> int:
        return self.seen[("GET", f"/v2/{repository}/blobs/{digest}")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mirror_setup(tmp_path_factory, django_db_setup, django_db_blocker, test_images):
    root = tmp_path_factory.mktemp("mirror")
    tokens = TokenServer()
    registry = start_token_registry(root / "upstream", tokens)
    proxy = CountingProxy(registry.url)
    hub = None
    try:
        hub = start_hub(root, with_worker=False, HUB_MIRRORS=f"{PREFIX}={proxy.url}",
                        HUB_MIRROR_HOSTS=f"{MIRROR_HOST}={PREFIX}", HUB_MIRROR_ANONYMOUS="1",
                        HUB_MIRROR_TTL_SECONDS="1", HUB_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
        multi = multiarch_layout(test_images, root / "multi")
        skopeo_push(registry.host, f"oci:{multi}:multi", "library/busybox:multi", all_images=True)
        yield {"hub": hub, "registry": registry, "proxy": proxy, "root": root}
    finally:
        if hub is not None:
            hub.stop()
        proxy.stop()
        registry.stop()
        tokens.close()


def multiarch_layout(test_images, layout: Path) -> Path:
    """A copy of the session's busybox layout with an index of its amd64 and arm64 images, tagged `multi`."""
    shutil.copytree(test_images.layout, layout)
    children = []
    for arch, image in test_images.multiarch.items():
        descriptor = image.manifest_descriptor
        children.append({"mediaType": descriptor["mediaType"], "digest": descriptor["digest"],
                         "size": descriptor["size"], "platform": {"os": "linux", "architecture": arch}})
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    digest = hashlib.sha256(body).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(body)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append({"mediaType": OCI_INDEX, "digest": f"sha256:{digest}", "size": len(body),
                               "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def skopeo_push(host: str, source: str, repository: str, *, all_images: bool = False) -> None:
    import subprocess

    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
            "--dest-creds", f"{PUSH_USER}:{PUSH_PASSWORD}",
            *(["--all"] if all_images else []), source, f"docker://{host}/{repository}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def mirror_clients(root: Path, hub_host: str) -> ContainerClients:
    """podman/skopeo whose docker.io has Wharf as its mirror (and nothing else: no network here)."""
    clients = ContainerClients(root, [hub_host])
    clients.registries_conf.write_text(
        "unqualified-search-registries = []\n\n"
        f'[[registry]]\nlocation = "{hub_host}"\ninsecure = true\n\n'
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n\n'
        f'[[registry.mirror]]\nlocation = "{hub_host}/{PREFIX}"\ninsecure = true\n')
    return clients


def anonymous_get(hub, path: str, *, host: str | None = None, scope_name: str) -> requests.Response:
    headers = {"Host": host} if host else {}
    token = requests.get(f"{hub.url}/token", params={"service": hub.host, "scope": f"repository:{scope_name}:pull"},
                         headers=headers, timeout=10).json()["token"]
    return requests.get(f"{hub.url}{path}", headers={**headers, "Authorization": f"Bearer {token}",
                                                     "Accept": ACCEPT}, timeout=30)


def test_pull_through_cache(mirror_setup, tmp_path, test_images):
    hub, proxy, registry = mirror_setup["hub"], mirror_setup["proxy"], mirror_setup["registry"]
    clients = mirror_clients(tmp_path / "podman", hub.host)

    # podman with Wharf as docker.io's mirror pulls the multi-arch image through it.
    result = clients.run(["podman", "pull", "--arch", "arm64", "docker.io/library/busybox:multi"], check=False)
    assert result.returncode == 0, f"{result.stderr}\n{hub.log()}"
    arm = test_images.multiarch["arm64"]
    assert proxy.seen[("GET", f"/v2/library/busybox/manifests/{arm.manifest_digest}")] == 1  # child on demand
    for digest in arm.layer_digests:
        assert proxy.blob_fetches("library/busybox", digest) == 1
    fetched_before = sum(count for (method, path), count in proxy.seen.items() if "/blobs/" in path)

    # A second client gets everything from Wharf: no blob is fetched again.
    other = mirror_clients(tmp_path / "podman2", hub.host)
    other.run(["podman", "pull", "--arch", "arm64", "docker.io/library/busybox:multi"])
    assert sum(count for (method, path), count in proxy.seen.items() if "/blobs/" in path) == fetched_before

    # Host mode: the mirror host serves the upstream's own names; its tokens name canonical repositories.
    response = anonymous_get(hub, "/v2/library/busybox/manifests/multi", host=MIRROR_HOST,
                             scope_name="library/busybox")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    unauthenticated = requests.get(f"{hub.url}/v2/library/busybox/manifests/multi",
                                   headers={"Host": f"{MIRROR_HOST}:{hub.port}"}, timeout=10)  # port ignored
    assert unauthenticated.status_code == 401
    assert f'realm="http://{MIRROR_HOST}:{hub.port}/token"' in unauthenticated.headers["WWW-Authenticate"]
    assert requests.get(f"{hub.url}/explore", headers={"Host": MIRROR_HOST}, timeout=10).status_code == 404

    # Eight clients pulling one uncached image at once: one upstream fetch per blob.
    image = write_layout(tmp_path / "big", "v1", layer_sizes=(4 * 1024 * 1024 + 3, 2048, 1000))
    skopeo_push(registry.host, f"oci:{tmp_path / 'big'}:v1", "team/big:v1")
    failures = []

    def pull(number: int) -> None:
        result = clients.run(["skopeo", "copy", "--src-tls-verify=false",
                              f"docker://{hub.host}/{PREFIX}/team/big:v1", f"dir:{tmp_path / f'copy{number}'}"],
                             check=False)
        if result.returncode:
            failures.append(result.stderr)

    threads = [threading.Thread(target=pull, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not failures, f"{failures[0]}\n{hub.log()}"
    assert proxy.seen[("GET", "/v2/team/big/manifests/v1")] == 1  # manifests fly once too
    for digest in image.blobs:
        assert proxy.blob_fetches("team/big", digest) == 1, (digest, proxy.log)
        assert (tmp_path / "copy7" / digest.split(":")[1]).read_bytes() == image.blobs[digest]

    # A tampered upstream blob is refused, stored nowhere, and fetched again once it is right.
    tampered = write_layout(tmp_path / "evil", "v1", layer_sizes=(300_000,))
    skopeo_push(registry.host, f"oci:{tmp_path / 'evil'}:v1", "team/evil:v1")
    layer = tampered.layers[0]
    proxy.tamper.add(layer)
    bad = clients.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{hub.host}/{PREFIX}/team/evil:v1",
                       f"dir:{tmp_path / 'evil-copy'}"], check=False)
    assert bad.returncode != 0
    again = clients.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{hub.host}/{PREFIX}/team/evil:v1",
                         f"dir:{tmp_path / 'evil-copy2'}"], check=False)
    assert again.returncode != 0  # never served from a cache it was not put in
    assert proxy.blob_fetches("team/evil", layer) >= 2
    proxy.tamper.clear()
    clients.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{hub.host}/{PREFIX}/team/evil:v1",
                 f"dir:{tmp_path / 'evil-copy3'}"])

    # A HEAD on an uncached blob asks the upstream with a HEAD and fetches nothing; a Range on it is
    # answered with that range while the whole blob is fetched, verified and stored.
    ranged = write_layout(tmp_path / "ranged", "v1", layer_sizes=(1_500_000,))
    skopeo_push(registry.host, f"oci:{tmp_path / 'ranged'}:v1", "team/ranged:v1")
    layer = ranged.layers[0]
    name = f"{PREFIX}/team/ranged"
    assert anonymous_get(hub, f"/v2/{name}/manifests/v1", scope_name=name).status_code == 200
    token = requests.get(f"{hub.url}/token", params={"service": hub.host, "scope": f"repository:{name}:pull"},
                         timeout=10).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    head = requests.head(f"{hub.url}/v2/{name}/blobs/{layer}", headers=auth, timeout=30)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(ranged.blobs[layer]))
    assert head.headers["X-Wharf-Mirror"] == "miss"
    assert proxy.blob_fetches("team/ranged", layer) == 0 and proxy.seen[("HEAD", f"/v2/team/ranged/blobs/{layer}")]
    part = requests.get(f"{hub.url}/v2/{name}/blobs/{layer}", headers={**auth, "Range": "bytes=1000000-1000099"},
                        timeout=30)
    assert part.status_code == 206 and part.content == ranged.blobs[layer][1_000_000:1_000_100]
    assert part.headers["Content-Range"] == f"bytes 1000000-1000099/{len(ranged.blobs[layer])}"
    whole = requests.get(f"{hub.url}/v2/{name}/blobs/{layer}", headers=auth, timeout=30)
    assert whole.content == ranged.blobs[layer] and "X-Wharf-Mirror" not in whole.headers  # stored whole
    assert proxy.blob_fetches("team/ranged", layer) == 1

    # The upstream answering 429: cached content is still served, and the response says it is stale.
    time.sleep(1.2)  # past the tag TTL: the next pull asks the upstream
    proxy.mode = "429"
    response = anonymous_get(hub, f"/v2/{PREFIX}/library/busybox/manifests/multi",
                             scope_name=f"{PREFIX}/library/busybox")
    assert response.status_code == 200 and response.headers["X-Wharf-Mirror"] == "stale"
    assert response.headers["Warning"] == '110 - "stale: upstream unavailable"'
    third = mirror_clients(tmp_path / "podman3", hub.host)
    third.run(["podman", "pull", "--arch", "arm64", "docker.io/library/busybox:multi"])

    # The upstream stopped: cached images still pull.
    proxy.stop()
    time.sleep(1.2)
    fourth = mirror_clients(tmp_path / "podman4", hub.host)
    fourth.run(["podman", "pull", "--arch", "arm64", "docker.io/library/busybox:multi"])
    fourth.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{hub.host}/{PREFIX}/team/big:v1",
                f"dir:{tmp_path / 'after-stop'}"])


@pytest.mark.browser
def test_explore_and_search_list_the_mirrored_repositories(mirror_setup, page, screenshots_dir):
    """The Mirrors section in the page (explore once had it inside <title>), fitting a phone, at both widths."""
    from tests.e2e.test_every_page_browser import fits_and_shoot

    hub = mirror_setup["hub"]
    cached = anonymous_get(hub, f"/v2/{PREFIX}/library/busybox/manifests/multi",
                           scope_name=f"{PREFIX}/library/busybox")
    assert cached.status_code == 200, cached.text
    page.goto(f"{hub.url}/explore")
    mirrors = page.locator("main section", has=page.locator("#mirrors-heading"))
    expect(mirrors.get_by_text(f"{hub.host}/{PREFIX}/library/busybox", exact=True)).to_be_visible()
    expect(mirrors).to_contain_text(f"mirror of {mirror_setup['proxy'].url.split('://', 1)[1]}/library/busybox")
    assert page.title().startswith("Explore ·") and "Mirrors" not in page.title()
    fits_and_shoot(page, screenshots_dir, "explore-mirrors")
    page.goto(f"{hub.url}/search?q=busybox")
    expect(page.locator("main #mirrors-heading")).to_be_visible()
    expect(page.locator("main").get_by_text(f"{hub.host}/{PREFIX}/library/busybox", exact=True)).to_be_visible()
    expect(page.locator("main .empty h2")).to_have_text("No repositories of this hub match")  # not "nothing"
    fits_and_shoot(page, screenshots_dir, "search-mirrors")
