"""Racing PATCHes on one upload cannot overwrite another tenant's blob (raw sockets, real gunicorn).

The attack: a PATCH carrying a known layer's bytes and a second PATCH carrying other bytes of the
same length, the second arriving within milliseconds of the first one's last byte, then
`PUT ?digest=<the known layer>`. If the upload's state were written after its lock was released,
the recorded digest would name the first body while the file held the second, and the PUT would
publish the second body under the victim's digest.
"""

import hashlib
import os
import random
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from registry.blobstore import blob_store  # noqa: E402
from tests.e2e.clients import RegistryApi  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e]

LAYER_BYTES = 256 * 1024
ROUNDS = 60
TIME_BUDGET = 40.0  # seconds: stop earlier rounds when the machine is slow


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def patch_head(api: RegistryApi, location: str, length: int) -> bytes:
    url = urlsplit(location)
    headers = {"Host": url.netloc, "Content-Type": "application/octet-stream", "Content-Length": str(length),
               "User-Agent": "wharf-e2e-race", **api.headers}
    path = url.path + (f"?{url.query}" if url.query else "")
    return (f"PATCH {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def status_of(sock: socket.socket) -> int:
    response = b""
    while b"\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            return 0  # the server closed the connection without an answer
        response += chunk
    return int(response.split(b" ", 2)[1])


def race_two_patches(api: RegistryApi, location: str, first: bytes, second: bytes, gap: float) -> tuple[int, int]:
    """`first` sent all but its last byte, then its last byte, then `second` whole `gap` seconds later."""
    url = urlsplit(location)
    with socket.create_connection((url.hostname, url.port), timeout=30) as one, \
            socket.create_connection((url.hostname, url.port), timeout=30) as two:
        one.sendall(patch_head(api, location, len(first)) + first[:-1])
        time.sleep(0.01)  # the first request is in the view, holding the upload, waiting for its last byte
        one.sendall(first[-1:])
        if gap:
            time.sleep(gap)
        two.sendall(patch_head(api, location, len(second)) + second)
        return status_of(one), status_of(two)


def blob_files(root: Path):
    """Every stored blob: `<algorithm>/<2 hex>/<hex>` (set-aside copies are dot-names)."""
    for path in root.glob("*/*/*"):
        if path.is_file() and not path.name.startswith(".") and path.parent.parent.name in ("sha256", "sha512"):
            yield path


def test_racing_patches_never_overwrite_a_stored_blob(target, make_account):
    target.require_hub("reads the hub's blob storage")
    victim, attacker = make_account(), make_account()
    layer = os.urandom(LAYER_BYTES)
    victim_api = target.api(victim, target.repo(victim))
    assert victim_api.push_blob(layer).status_code == 201
    stored = blob_store.path(sha256(layer))
    before = stored.stat()
    attacker_api = target.api(attacker, target.repo(attacker))
    outcomes: dict[tuple[int, int, int], int] = {}
    rng = random.Random(1234)

    deadline = time.monotonic() + TIME_BUDGET
    rounds = 0
    while rounds < ROUNDS and time.monotonic() < deadline:
        rounds += 1
        location = attacker_api.start_upload()
        statuses = race_two_patches(attacker_api, location, layer, os.urandom(LAYER_BYTES),
                                    gap=rng.choice([0, 0, 0.0005, 0.001, 0.002, 0.004]))
        put = attacker_api.request("PUT", location, params={"digest": sha256(layer)})
        outcomes[(*statuses, put.status_code)] = outcomes.get((*statuses, put.status_code), 0) + 1
        assert put.status_code in (201, 400, 404), put.text
        assert sha256(stored.read_bytes()) == sha256(layer), f"round {rounds}: the victim's blob was overwritten"

    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "stored bytes were rewritten"
    assert sha256(victim_api.get_blob(sha256(layer)).content) == sha256(layer)
    print(f"{rounds} rounds; (first PATCH, second PATCH, PUT) statuses: {outcomes}")
    assert rounds >= 10, f"only {rounds} rounds ran in {TIME_BUDGET} s"
    mismatched = [path for path in blob_files(blob_store.root)
                  if hashlib.new(path.parent.parent.name, path.read_bytes()).hexdigest() != path.name]
    assert mismatched == [], f"blobs whose bytes do not match their digest: {mismatched} (outcomes {outcomes})"
