"""A mirror `dockerhub` of Docker Hub whose upstream is a fake client in memory (FakeUpstream),
so the Wharf side of the pull-through cache is tested without a network; the e2e test
(tests/e2e/test_mirror.py) puts a real registry behind it."""

from __future__ import annotations

import threading

from registry.mirror import service
from registry.mirror.config import Mirror
from registry.mirror.upstream import (
    BlobInfo,
    DigestMismatch,
    FetchedManifest,
    ManifestInfo,
    UpstreamNotFound,
)
from tests.registry.helpers import OCI_MANIFEST, config_blob, digest_of, image_manifest, index_manifest

PREFIX = "dockerhub"


class FakeBlobStream:
    def __init__(self, data: bytes, digest: str, chunk: int = 7) -> None:
        chunk = chunk if len(data) < 1 << 20 else 1 << 20
        self.data, self.digest, self.chunk = data, digest, chunk
        self.size = len(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start:start + self.chunk]
        if digest_of(self.data) != self.digest:
            raise DigestMismatch(f"expected {self.digest}")


class FakeUpstream:
    """Repositories of manifests (by tag and digest) and blobs; counts every call; `fail` makes
    every call raise that exception; `tampered` serves other bytes for a blob digest."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.fail: Exception | None = None
        self.tampered: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.blob_gate: threading.Event | None = None

    def add_image(self, repository: str, tag: str, *, arch: str = "amd64", layers: tuple[bytes, ...] = (b"layer",),
                  salt: str = "") -> bytes:
        config = config_blob(arch=arch, salt=salt + tag)
        body = image_manifest(config, list(layers))
        for blob in (config, *layers):
            self.blobs[(repository, digest_of(blob))] = blob
        self.manifests[(repository, digest_of(body))] = (body, OCI_MANIFEST)
        if tag:
            self.manifests[(repository, tag)] = (body, OCI_MANIFEST)
        return body

    def add_index(self, repository: str, tag: str) -> tuple[bytes, list[bytes]]:
        amd = self.add_image(repository, "", arch="amd64", layers=(b"amd64 layer",))
        arm = self.add_image(repository, "", arch="arm64", layers=(b"arm64 layer",))
        body = index_manifest([(amd, "linux", "amd64"), (arm, "linux", "arm64")])
        media_type = "application/vnd.oci.image.index.v1+json"
        self.manifests[(repository, digest_of(body))] = (body, media_type)
        self.manifests[(repository, tag)] = (body, media_type)
        return body, [amd, arm]

    def _call(self, kind: str, repository: str, reference: str) -> None:
        with self.lock:
            self.calls.append((kind, repository, reference))
        if self.fail is not None:
            raise self.fail

    def count(self, kind: str) -> int:
        return sum(1 for call in self.calls if call[0] == kind)

    def _manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        try:
            return self.manifests[(repository, reference)]
        except KeyError:
            raise UpstreamNotFound(f"{repository}:{reference} not found") from None

    def head_manifest(self, repository: str, reference: str) -> ManifestInfo:
        self._call("head", repository, reference)
        body, media_type = self._manifest(repository, reference)
        return ManifestInfo(digest=digest_of(body), media_type=media_type, size=len(body))

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        self._call("manifest", repository, reference)
        body, media_type = self._manifest(repository, reference)
        return FetchedManifest(digest=digest_of(body), media_type=media_type, size=len(body), body=body)

    def head_blob(self, repository: str, digest: str) -> BlobInfo:
        self._call("head_blob", repository, digest)
        if (repository, digest) not in self.blobs:
            raise UpstreamNotFound(f"blob {digest} not found")
        return BlobInfo(digest=digest, size=len(self.blobs[(repository, digest)]))

    def open_blob(self, repository: str, digest: str) -> FakeBlobStream:
        self._call("blob", repository, digest)
        if self.blob_gate is not None:
            self.blob_gate.wait(10)
        if (repository, digest) not in self.blobs:
            raise UpstreamNotFound(f"blob {digest} not found")
        return FakeBlobStream(self.tampered.get(digest, self.blobs[(repository, digest)]), digest)


def installed(settings):
    """Configure the mirror `dockerhub` with a FakeUpstream as its client (a fixture's body)."""
    settings.HUB_MIRRORS = {PREFIX: Mirror(prefix=PREFIX, url="https://registry-1.docker.io")}
    settings.HUB_MIRROR_READERS = {}
    settings.HUB_MIRROR_ANONYMOUS = False
    settings.HUB_MIRROR_TTL_SECONDS = 300
    fake = FakeUpstream()
    service._clients[PREFIX] = fake
    yield fake
    service._clients.pop(PREFIX, None)

