"""Test images, built offline once per session: umoci + busybox-static, or Python writing an OCI layout.

Every image lives in an OCI image layout under one session directory whose path is lowercase (podman
refuses `oci:` paths with capitals). `OciImage.ref` is what skopeo, podman and buildah take as a source.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_LINKS = ("sh", "ls", "cat", "echo", "true")
CHUNK = 1 << 20


@dataclass(frozen=True)
class OciImage:
    """One tagged image in an OCI layout on disk."""

    layout: Path
    tag: str

    @property
    def ref(self) -> str:
        """The source reference for skopeo/podman/buildah: `oci:<layout>:<tag>`."""
        return f"oci:{self.layout}:{self.tag}"

    def blob_path(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return self.layout / "blobs" / algorithm / hexdigest

    @property
    def manifest_descriptor(self) -> dict:
        index = json.loads((self.layout / "index.json").read_text())
        for descriptor in index["manifests"]:
            if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == self.tag:
                return descriptor
        raise KeyError(f"no tag {self.tag!r} in {self.layout}")

    @property
    def manifest_digest(self) -> str:
        return self.manifest_descriptor["digest"]

    @property
    def manifest(self) -> dict:
        return json.loads(self.blob_path(self.manifest_digest).read_bytes())

    @property
    def config_digest(self) -> str:
        return self.manifest["config"]["digest"]

    @property
    def config(self) -> dict:
        return json.loads(self.blob_path(self.config_digest).read_bytes())

    @property
    def layer_digests(self) -> list[str]:
        return [layer["digest"] for layer in self.manifest["layers"]]


# --- Writing OCI layouts from Python -------------------------------------------------------------


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it (for streamed layers)."""

    def __init__(self, target):
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _init_layout(layout: Path) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    if not (layout / "oci-layout").exists():
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))


def _put_blob_bytes(layout: Path, data: bytes) -> tuple[str, int]:
    hexdigest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return f"sha256:{hexdigest}", len(data)


def _put_blob_stream(layout: Path, write) -> tuple[str, int]:
    """Call `write(fileobj)` to produce a blob, hashing as it streams to disk; returns (digest, size)."""
    blobs = layout / "blobs" / "sha256"
    fd, tmp_name = tempfile.mkstemp(dir=blobs, prefix=".tmp-")
    with os.fdopen(fd, "wb") as raw:
        writer = _HashingWriter(raw)
        write(writer)
    hexdigest = writer.sha256.hexdigest()
    os.replace(tmp_name, blobs / hexdigest)
    return f"sha256:{hexdigest}", writer.size


def _tag_manifest(layout: Path, tag: str, manifest: dict) -> OciImage:
    digest, size = _put_blob_bytes(layout, json.dumps(manifest, separators=(",", ":")).encode())
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"] = [
        d for d in index["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    index["manifests"].append({
        "mediaType": OCI_MANIFEST, "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": tag},
    })
    index_path.write_text(json.dumps(index))
    return OciImage(layout, tag)


def _write_image(layout: Path, tag: str, *, config: dict, layers: list[dict]) -> OciImage:
    config_digest, config_size = _put_blob_bytes(layout, json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    return _tag_manifest(layout, tag, manifest)


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build_unique_image(base: OciImage, layout: Path, tag: str = "latest") -> OciImage:
    """`base` plus one small gzip layer holding a random file: content no registry has seen yet."""
    _init_layout(layout)
    for digest in base.layer_digests:
        _link_or_copy(base.blob_path(digest), layout / "blobs" / "sha256" / digest.split(":", 1)[1])
    token = uuid.uuid4().hex
    payload = f"{token}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"unique-{token}")
        info.size, info.mode, info.mtime = len(payload), 0o644, 0
        tar.addfile(info, io.BytesIO(payload))
    diff_id = "sha256:" + hashlib.sha256(tar_bytes.getvalue()).hexdigest()
    layer_digest, layer_size = _put_blob_bytes(layout, gzip.compress(tar_bytes.getvalue(), mtime=0))
    config = base.config
    config["rootfs"]["diff_ids"] = [*config["rootfs"]["diff_ids"], diff_id]
    config["history"] = [*config.get("history", []), {"created_by": f"wharf e2e unique {token}"}]
    layers = [*base.manifest["layers"], {"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_size}]
    return _write_image(layout, tag, config=config, layers=layers)


def build_large_image(layout: Path, mib: int, tag: str = "latest") -> OciImage:
    """A single uncompressed tar layer of `mib` MiB of random data, streamed to disk (memory stays flat)."""
    _init_layout(layout)

    def write_layer(out) -> None:
        class RandomReader:
            remaining = mib * CHUNK

            def read(self, n: int = CHUNK) -> bytes:
                n = min(n, self.remaining, CHUNK)
                self.remaining -= n
                return os.urandom(n) if n else b""

        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
            info = tarfile.TarInfo("random.bin")
            info.size, info.mode, info.mtime = mib * CHUNK, 0o644, 0
            tar.addfile(info, RandomReader())

    layer_digest, layer_size = _put_blob_stream(layout, write_layer)
    config = {
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": f"wharf e2e {mib} MiB random layer"}],
    }
    return _write_image(layout, tag, config=config,
                        layers=[{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer_size}])


# --- Building with umoci ------------------------------------------------------------------------


def _umoci(*args: str) -> None:
    argv = ["umoci", *args]
    if os.geteuid() != 0 and args[0] in ("unpack", "repack"):
        argv.insert(2, "--rootless")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")


def _busybox_rootfs(rootfs: Path) -> None:
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for name in BUSYBOX_LINKS:
        (rootfs / "bin" / name).symlink_to("busybox")


class TestImages:
    """The session's images. `small` is tagged v1; `second` adds one layer to it (blob reuse and mount);
    `amd64`/`arm64` differ only in their config; `unique()` and `large()` make fresh images on demand."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, root: Path):
        self.root = root
        self.layout = root / "base"
        self._counter = itertools.count()
        self._lock = threading.Lock()
        bundle = root / "bundle"
        _umoci("init", "--layout", str(self.layout))
        _umoci("new", "--image", f"{self.layout}:v1")
        _umoci("unpack", "--image", f"{self.layout}:v1", str(bundle))
        _busybox_rootfs(bundle / "rootfs")
        _umoci("repack", "--image", f"{self.layout}:v1", str(bundle))
        _umoci("config", "--image", f"{self.layout}:v1", "--config.cmd", "/bin/sh",
               "--architecture", "amd64", "--os", "linux", "--created", "2024-01-01T00:00:00Z")
        shutil.rmtree(bundle)
        _umoci("unpack", "--image", f"{self.layout}:v1", str(bundle))
        (bundle / "rootfs" / "etc").mkdir(exist_ok=True)
        (bundle / "rootfs" / "etc" / "wharf-release").write_text("second\n")
        _umoci("repack", "--image", f"{self.layout}:v2", str(bundle))
        for arch in ("amd64", "arm64"):
            _umoci("config", "--image", f"{self.layout}:v1", "--tag", arch, "--architecture", arch, "--os", "linux",
                   "--created", "2024-01-01T00:00:00Z", "--history.comment", f"wharf e2e {arch}")
        shutil.rmtree(bundle)

    @property
    def small(self) -> OciImage:
        return OciImage(self.layout, "v1")

    @property
    def second(self) -> OciImage:
        return OciImage(self.layout, "v2")

    @property
    def multiarch(self) -> dict[str, OciImage]:
        return {arch: OciImage(self.layout, arch) for arch in ("amd64", "arm64")}

    def _fresh_layout(self, kind: str) -> Path:
        with self._lock:
            return self.root / f"{kind}-{next(self._counter)}"

    def unique(self) -> OciImage:
        """A new image (the small one plus a layer with a random file), tagged `latest`."""
        return build_unique_image(self.small, self._fresh_layout("unique"))

    def large(self, mib: int) -> OciImage:
        return build_large_image(self._fresh_layout("large"), mib)


@pytest.fixture(scope="session")
def test_images():
    """Build the images once per session in a lowercase temp dir; removed at the end."""
    # podman names an `oci:` image after its path, so the path must be a valid lowercase reference.
    root = Path(tempfile.gettempdir()) / f"wharf-e2e-images-{uuid.uuid4().hex[:12]}"
    root.mkdir(mode=0o700)
    started = time.monotonic()
    try:
        images = TestImages(root)
        images.build_seconds = time.monotonic() - started
        yield images
    finally:
        shutil.rmtree(root, ignore_errors=True)
