"""What the concurrent benchmarks share (bench/registry_load.py, bench/scaleout.py): distinct layers made
cheaply, a one-layer OCI image around one, and clients run on threads of their own, all released at once."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.e2e.images import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST


class Layers:
    """Distinct layers of one size, cheaply: random bytes shared by all and a 32-byte tail of each one's own."""

    TAIL = 32

    def __init__(self, size: int) -> None:
        self.body = os.urandom(max(size - self.TAIL, 0))
        self.hasher = hashlib.sha256(self.body)

    def tail(self) -> tuple[bytes, str]:
        """A new layer's own tail, and the digest of `body` followed by it."""
        tail = uuid.uuid4().hex.encode()[:self.TAIL].ljust(self.TAIL, b"-")
        hasher = self.hasher.copy()
        hasher.update(tail)
        return tail, "sha256:" + hasher.hexdigest()


def one_layer_image(layer_digest: str, layer_size: int, created_by: str) -> tuple[bytes, str, bytes]:
    """The config (and its digest) and the OCI manifest of an image of that one layer."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                         "history": [{"created_by": created_by}]}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest, "size": layer_size}],
    }).encode()
    return config, config_digest, manifest


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    moved: int = 0
    errors: int = 0
    wall: float = 0.0
    load: float = 0.0  # the machine's 1-minute load average as the clients began
    first_error: str = ""
    kinds: dict[str, int] = field(default_factory=dict)  # operations done, by kind (pull, push)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else float("nan")


Operation = tuple[str, Callable[[], int]]  # (kind, call returning the bytes it moved)


def settle() -> None:
    """Write dirty pages out before a timed step (untimed), so that a step does not pay for the writeback of
    the one before it, which ran on the other registry (or, before the load, of the 1 GiB Wharf-only push)."""
    os.sync()


def run_clients(clients: list[list[Operation]], outcome: Outcome | None = None) -> Outcome:
    """Each client's operations in turn on a thread of its own, all clients released at once; figures are
    added to `outcome` (a new Outcome without one). A failed operation is counted, not raised."""
    outcome = outcome if outcome is not None else Outcome()
    outcome.load = os.getloadavg()[0]
    lock = threading.Lock()
    start = threading.Barrier(len(clients) + 1)

    def client(operations: list[Operation]) -> None:
        start.wait()
        for kind, operation in operations:
            began = time.perf_counter()
            try:
                moved = operation()
            except Exception as exc:  # noqa: BLE001 - a failed operation is a figure, not the end of the bench
                with lock:
                    outcome.errors += 1
                    outcome.first_error = outcome.first_error or f"{kind}: {type(exc).__name__}: {exc}"[:400]
                continue
            with lock:
                outcome.latencies.append(time.perf_counter() - began)
                outcome.moved += moved
                outcome.kinds[kind] = outcome.kinds.get(kind, 0) + 1

    threads = [threading.Thread(target=client, args=(operations,), daemon=True) for operations in clients]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    outcome.wall = time.perf_counter() - began
    return outcome
