"""Concurrent load for bench/registry.py: Wharf and the reference registry under many clients at once.

Three kinds of scenario, each run on Wharf and on the reference back to back (Wharf first, then the
reference, scenario after scenario, so a shared host's changing load falls on both alike):

* N simultaneous skopeo pulls (N from --load-clients, 16 and 64 by default) of one --load-mib (32 MiB)
  single-layer image, each `skopeo copy docker://… dir:…` into a folder of its own. Real clients: a pull
  is what a user waits for, token round trips included.
* N simultaneous skopeo pushes of that image, each to a repository of its own (a fresh name per push and
  run). The layer is the same for every push, so each client gets its own empty blob-info cache (as root:
  a private mount namespace with a temp dir bound over /var/lib/containers/cache, as tests/e2e/clients.py
  does; otherwise its own HOME): skopeo then asks the new repository (HEAD, 404) and uploads every byte
  instead of mounting the blob from a sibling repository another client just pushed to.
* A mixed workload like zot's benchmark tool zb ("Pull 75% and Push 25% Mixed 1MB / 10MB / 100MB"): for
  each size of --load-sizes (1, 10 and 100 MiB) N clients share out --load-ops operations (128, zb's -n;
  at least one a client), each one a pull with probability 0.75 and a push otherwise (the draws are
  seeded, so both registries get the same sequence). Raw HTTP with requests, not skopeo: for 1 MiB
  images skopeo's process start-up (about 0.1 s of CPU) would dominate. A pull is the manifest GET by
  tag, then the config and layer GETs (streamed, redirects followed, lengths checked) of one image of
  that size pushed before the scenario (untimed). A push is config and layer each as POST, one PATCH of
  the whole blob, PUT ?digest= (as skopeo uploads), then the manifest PUT, into a repository of its own;
  every pushed layer is new (random bytes shared by all plus a tail of its own), so no registry can skip
  receiving or hashing it. Each client keeps one HTTP session (keep-alive), like a client process. On
  Wharf every operation first gets a token for its repository from /token with the bench user's
  password (Basic), as a client's pull or push session does (--load-token-reuse: a client keeps its
  token for a repository, so its pulls of the shared image ask /token once; each push still asks for
  its new repository); the reference runs without auth, as in the rest of bench/registry.py.

Each scenario prints, per registry: operations done, errors, wall time of the whole scenario, throughput
(operations/s and MiB/s of image bytes moved), p50 and p95 latency of one operation, and the machine's
1-minute load average when it began; then the Wharf/reference ratios (wall time and p50/p95: lower is
better for Wharf). With --load-runs R each scenario runs R times per registry (interleaved) and the round
with the median wall time is shown; 16 simultaneous skopeo pulls, the row with a target, always runs at least
3 rounds. Dirty pages are written out (untimed) before every round. Not a test: it asserts nothing and only
prints figures.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from bench.workload import Layers, Operation, Outcome, one_layer_image, run_clients, settle
from tests.e2e.clients import SYSTEM_BLOB_CACHE, _can_isolate_blob_cache
from tests.e2e.images import OCI_MANIFEST, build_large_image

MIB = 1 << 20
PUSH_SHARE = 0.25  # zb: "Pull 75% and Push 25%"
CLIENT_TIMEOUT = 900  # seconds for one skopeo copy or one HTTP request: a slow operation is slow, not an error
READ_BLOCK = MIB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("concurrent load (bench/registry_load.py)")
    group.add_argument("--load-only", action="store_true", help="run only the concurrent load scenarios")
    group.add_argument("--no-load", action="store_true", help="skip the concurrent load scenarios")
    group.add_argument("--load-clients", default="16,64", help="simultaneous clients, comma-separated")
    group.add_argument("--load-mib", type=int, default=32, help="image size for the skopeo pulls and pushes (MiB)")
    group.add_argument("--load-sizes", default="1,10,100", help="blob sizes of the mixed workload (MiB)")
    group.add_argument("--load-ops", type=int, default=128,
                       help="operations in each mixed scenario, shared out among its clients (zb's -n)")
    group.add_argument("--load-runs", type=int, default=1, help="rounds per scenario and registry (median shown)")
    group.add_argument("--load-skip", default="", help="scenario kinds to leave out: pull,push,mixed")
    group.add_argument("--load-token-reuse", action="store_true",
                       help="mixed workload: a Wharf client reuses its token for a repository (pulls) instead of "
                            "asking /token (password checked) for every operation")


@dataclass
class LoadTarget:
    """One registry: `account` is (user, password) for token auth, None for a registry without auth."""

    name: str
    host: str
    account: tuple[str, str] | None = None
    reuse_tokens: bool = False  # --load-token-reuse: one token per client and scope, not one per operation

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> str | None:
        return ":".join(self.account) if self.account else None

    def auth_headers(self, session: requests.Session, repo: str, actions: str) -> dict[str, str]:
        """A fresh bearer token for `repo` (one round trip, the password checked), or nothing without auth."""
        if not self.account:
            return {}
        reused = session.__dict__.setdefault("bench_tokens", {}) if self.reuse_tokens else {}
        if (repo, actions) in reused:
            return reused[repo, actions]
        response = session.get(f"{self.url}/token", params={"service": self.host,
                                                              "scope": f"repository:{repo}:{actions}"},
                               auth=self.account, timeout=CLIENT_TIMEOUT)
        expect(response, 200, "GET /token")
        reused[repo, actions] = {"Authorization": f"Bearer {response.json()['token']}"}
        return reused[repo, actions]


class LoadError(Exception):
    """An operation that did not end as the protocol says."""


def expect(response: requests.Response, status: int, what: str) -> requests.Response:
    if response.status_code != status:
        raise LoadError(f"{what}: {response.status_code} {response.text[:200]!r}")
    return response


# --- Running clients at once -------------------------------------------------------------------


# --- skopeo clients ----------------------------------------------------------------------------


class SkopeoClient:
    """One skopeo user: a HOME of its own and, as root, a blob-info cache of its own (see the docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("home", "blob-cache", "tmp"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(root / "tmp")}

    def reset(self) -> None:
        """An empty blob-info cache and HOME, and no pulled folder (untimed: before a scenario)."""
        shutil.rmtree(self.root / "pulled", ignore_errors=True)
        for folder in ("blob-cache", "home"):
            shutil.rmtree(self.root / folder, ignore_errors=True)
            (self.root / folder).mkdir()

    def copy(self, source: str, dest: str, *, src_creds: str | None = None, dest_creds: str | None = None) -> None:
        argv = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
        argv += ["--src-creds", src_creds] if src_creds else []
        argv += ["--dest-creds", dest_creds] if dest_creds else []
        argv += [source, dest]
        if _can_isolate_blob_cache():
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    f'mount --bind "$0" {SYSTEM_BLOB_CACHE} && exec "$@"', str(self.root / "blob-cache"), *argv]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        if result.returncode != 0:
            raise LoadError(f"skopeo copy {source} {dest}: {result.stderr.strip()[-300:]}")


def image_bytes(layout_image) -> int:
    manifest = layout_image.manifest
    return sum(d["size"] for d in [manifest["config"], *manifest["layers"]])


def skopeo_pulls(target: LoadTarget, clients: list[SkopeoClient], repo: str, size: int) -> list[list[Operation]]:
    def pull(client: SkopeoClient) -> int:
        client.copy(f"docker://{target.host}/{repo}:bench", f"dir:{client.root / 'pulled'}", src_creds=target.creds)
        return size

    for client in clients:
        client.reset()
    return [[("pull", lambda client=client: pull(client))] for client in clients]


def skopeo_pushes(target: LoadTarget, clients: list[SkopeoClient], image, namespace: str,
                  size: int) -> list[list[Operation]]:
    def push(client: SkopeoClient, repo: str) -> int:
        client.copy(image.ref, f"docker://{target.host}/{repo}:bench", dest_creds=target.creds)
        return size

    for client in clients:
        client.reset()
    stamp = uuid.uuid4().hex[:8]
    return [[("push", lambda client=client, i=i: push(client, f"{namespace}/load-push-{stamp}-{i}"))]
            for i, client in enumerate(clients)]


# --- Raw HTTP clients for the mixed workload ---------------------------------------------------


class LayerBody:
    """A blob to upload: `body` then `tail`, read in 1 MiB blocks with a known length (Content-Length)."""

    def __init__(self, body: bytes, tail: bytes) -> None:
        self.body, self.tail, self.offset = memoryview(body), tail, 0
        self.size = len(body) + len(tail)

    def __len__(self) -> int:
        return self.size

    def read(self, _n: int = -1) -> bytes | memoryview:
        """The next block, whatever size was asked: urllib3 sends each block as it comes (fewer, larger sends)."""
        body = self.body
        if self.offset < len(body):
            block = body[self.offset:self.offset + READ_BLOCK]
        elif self.offset < self.size:
            block = self.tail
        else:
            return b""
        self.offset += len(block)
        return block


class StreamedLayers(Layers):
    """Layers handed out as LayerBody, read in blocks, never joined into one bytes object."""

    def new(self) -> tuple[LayerBody, str]:
        tail, digest = self.tail()
        return LayerBody(self.body, tail), digest


def upload(session: requests.Session, target: LoadTarget, repo: str, data, digest: str,
           headers: dict[str, str]) -> None:
    """POST, one PATCH of the whole blob, PUT ?digest= (skopeo's way of uploading)."""
    opened = expect(session.post(f"{target.url}/v2/{repo}/blobs/uploads/", headers=headers,
                                 timeout=CLIENT_TIMEOUT), 202, "POST upload")
    location = urljoin(target.url + "/", opened.headers["Location"])
    patched = expect(session.patch(location, data=data, headers={**headers,
                                                                  "Content-Type": "application/octet-stream"},
                                   timeout=CLIENT_TIMEOUT), 202, "PATCH upload")
    location = urljoin(target.url + "/", patched.headers["Location"])
    expect(session.put(location, params={"digest": digest}, headers=headers, timeout=CLIENT_TIMEOUT),
           201, "PUT upload")


def http_push(session: requests.Session, target: LoadTarget, repo: str, tag: str, layers: StreamedLayers) -> int:
    headers = target.auth_headers(session, repo, "pull,push")
    layer, layer_digest = layers.new()
    config, config_digest, manifest = one_layer_image(layer_digest, layer.size,
                                                      f"wharf bench/registry_load.py {repo}:{tag}")
    upload(session, target, repo, config, config_digest, headers)
    upload(session, target, repo, layer, layer_digest, headers)
    expect(session.put(f"{target.url}/v2/{repo}/manifests/{tag}", data=manifest,
                       headers={**headers, "Content-Type": OCI_MANIFEST}, timeout=CLIENT_TIMEOUT),
           201, "PUT manifest")
    return len(config) + layer.size


def http_pull(session: requests.Session, target: LoadTarget, repo: str, tag: str) -> int:
    headers = target.auth_headers(session, repo, "pull")
    manifest = expect(session.get(f"{target.url}/v2/{repo}/manifests/{tag}",
                                  headers={**headers, "Accept": OCI_MANIFEST}, timeout=CLIENT_TIMEOUT),
                      200, "GET manifest").json()
    moved = 0
    for descriptor in [manifest["config"], *manifest["layers"]]:
        with session.get(f"{target.url}/v2/{repo}/blobs/{descriptor['digest']}", headers=headers, stream=True,
                         timeout=CLIENT_TIMEOUT) as response:
            expect(response, 200, "GET blob")
            got = sum(len(block) for block in response.iter_content(READ_BLOCK))
        if got != descriptor["size"]:
            raise LoadError(f"GET blob {descriptor['digest']}: {got} bytes, not {descriptor['size']}")
        moved += got
    return moved


def mixed_clients(target: LoadTarget, clients: int, total: int, mib: int, pull_repo: str, namespace: str,
                  layers: StreamedLayers) -> list[list[Operation]]:
    """zb's "Pull 75% and Push 25% Mixed": `total` operations (at least one a client), the same seeded
    draws on every registry."""
    stamp, ops = uuid.uuid4().hex[:8], max(math.ceil(total / clients), 1)
    work: list[list[Operation]] = []
    for i in range(clients):
        session = requests.Session()
        draws = random.Random(f"mixed-{mib}-{clients}-{i}")
        mine: list[Operation] = []
        for k in range(ops):
            if draws.random() < PUSH_SHARE:
                repo = f"{namespace}/load-mixed-{stamp}-{i}-{k}"
                mine.append(("push", lambda s=session, r=repo: http_push(s, target, r, "bench", layers)))
            else:
                mine.append(("pull", lambda s=session: http_pull(s, target, pull_repo, "bench")))
        work.append(mine)
    return work


# --- Scenarios and the report ------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    outcomes: dict[str, Outcome]  # by target name


def median_round(rounds: list[Outcome]) -> Outcome:
    return sorted(rounds, key=lambda outcome: outcome.wall)[(len(rounds) - 1) // 2]


def scenario(label: str, targets: list[LoadTarget], runs: int,
             make: Callable[[LoadTarget], list[list[Operation]]]) -> Row:
    rounds: dict[str, list[Outcome]] = {target.name: [] for target in targets}
    for run in range(runs):
        for target in targets:
            operations = make(target)
            settle()
            outcome = run_clients(operations)
            rounds[target.name].append(outcome)
            done = len(outcome.latencies)
            print(f"  {label}, {target.name}, round {run + 1}: {done} done, {outcome.errors} errors, "
                  f"wall {outcome.wall:.2f} s, p50 {outcome.percentile(0.5):.2f} s, "
                  f"p95 {outcome.percentile(0.95):.2f} s, load {outcome.load:.1f}", flush=True)
            if outcome.first_error:
                print(f"    first error: {outcome.first_error}", flush=True)
    return Row(label, {name: median_round(outcomes) for name, outcomes in rounds.items()})


def print_report(rows: list[Row], targets: list[LoadTarget]) -> None:
    ours, theirs = targets[0].name, targets[-1].name
    print()
    print(f"| scenario | registry | ops (pull/push) | errors | wall (s) | ops/s | MiB/s | p50 (s) | p95 (s) | load "
          f"| {ours}/{theirs} wall, p50, p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for target in targets:
            o = row.outcomes[target.name]
            kinds = "/".join(str(o.kinds.get(kind, 0)) for kind in ("pull", "push"))
            ratio = ""
            if target.name == ours and theirs in row.outcomes:
                t = row.outcomes[theirs]
                ratio = ", ".join(f"{a / b:.2f}×" if b and not math.isnan(a) else "—" for a, b in (
                    (o.wall, t.wall), (o.percentile(0.5), t.percentile(0.5)),
                    (o.percentile(0.95), t.percentile(0.95))))
            print(f"| {row.scenario} | {target.name} | {len(o.latencies)} ({kinds}) | {o.errors} | {o.wall:.2f} "
                  f"| {len(o.latencies) / o.wall:.2f} | {o.moved / MIB / o.wall:.1f} | {o.percentile(0.5):.2f} "
                  f"| {o.percentile(0.95):.2f} | {o.load:.1f} | {ratio} |")
    for row in rows:  # the target: 16 simultaneous skopeo pulls ≤ 1.0× the reference's wall time
        if row.scenario.startswith("16 skopeo pulls") and row.outcomes[theirs].wall:
            ratio = row.outcomes[ours].wall / row.outcomes[theirs].wall
            print(f"16 simultaneous skopeo pulls: {ratio:.2f}× the reference's wall time, target ≤ 1.0× "
                  f"{'met' if round(ratio, 2) <= 1.0 else 'NOT met'}")  # as printed
    print("(Figures from a shared 2-core host move by ±20% or more from run to run; clients and registries share "
          "the cores.)")


def run(args: argparse.Namespace, work: Path, targets: list[LoadTarget], namespace: str) -> list[Row]:
    """Every scenario on every target (the first is the one compared, the last the baseline), printing each
    round as it ends; the rows for print_report."""
    for target in targets:
        target.reuse_tokens = args.load_token_reuse
    clients_counts = [int(n) for n in args.load_clients.split(",") if n.strip()]
    sizes = [int(n) for n in args.load_sizes.split(",") if n.strip()]
    skip = {kind.strip() for kind in args.load_skip.split(",") if kind.strip()}
    root = work / "load"
    root.mkdir(parents=True, exist_ok=True)
    print(f"# concurrent load: {'/'.join(map(str, clients_counts))} clients, skopeo {args.load_mib} MiB, mixed "
          f"{'/'.join(map(str, sizes))} MiB, {args.load_ops} operations each, {args.load_runs} round(s)"
          f"{', tokens reused' if args.load_token_reuse else ''}",
          flush=True)
    if not _can_isolate_blob_cache() and os.geteuid() == 0:  # probed once here, not in the first timed copy
        print("  (cannot give each skopeo client a blob-info cache of its own: pushes may mount, not upload)")
    image = build_large_image(root / "image", args.load_mib, tag="bench")
    size = image_bytes(image)
    skopeo_clients = [SkopeoClient(root / f"client-{i}") for i in range(max(clients_counts))]
    rows: list[Row] = []
    pull_repo = f"{namespace}/load-pull"
    if "pull" not in skip:
        for target in targets:  # the image every skopeo pull fetches (untimed)
            skopeo_clients[0].reset()
            skopeo_clients[0].copy(image.ref, f"docker://{target.host}/{pull_repo}:bench", dest_creds=target.creds)
    for clients in clients_counts:
        mine = skopeo_clients[:clients]
        if "pull" not in skip:
            # the row with a target in issue 18 gets a median of at least 3 rounds, as the other targets do
            pull_runs = max(args.load_runs, 3) if clients == 16 else args.load_runs
            rows.append(scenario(f"{clients} skopeo pulls, {args.load_mib} MiB", targets, pull_runs,
                                 lambda target, mine=mine: skopeo_pulls(target, mine, pull_repo, size)))
        if "push" not in skip:
            rows.append(scenario(f"{clients} skopeo pushes, {args.load_mib} MiB", targets, args.load_runs,
                                 lambda target, mine=mine: skopeo_pushes(target, mine, image, namespace, size)))
    shutil.rmtree(root, ignore_errors=True)
    if "mixed" not in skip:
        for mib in sizes:
            layers = StreamedLayers(mib * MIB)
            mixed_repo = f"{namespace}/load-mixed-{mib}"
            for target in targets:  # the image the pulls fetch (untimed)
                with requests.Session() as session:
                    http_push(session, target, mixed_repo, "bench", layers)
            for clients in clients_counts:
                rows.append(scenario(
                    f"{clients} clients, mixed 75% pull / 25% push, {mib} MiB", targets, args.load_runs,
                    lambda target, clients=clients, mib=mib, layers=layers, repo=mixed_repo: mixed_clients(
                        target, clients, args.load_ops, mib, repo, namespace, layers)))
    return rows


