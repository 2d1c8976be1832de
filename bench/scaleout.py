#!/usr/bin/env python
"""Scale-out benchmark: pushes and pulls through HAProxy to 1, 2 and 3 stateless web nodes sharing
one PostgreSQL, one Redis and one S3 endpoint (moto's server), on loopback (tests/cluster.py).

For each node count a fresh cluster starts (gunicorn nodes with data dirs of their own behind HAProxy
round-robin) and is warmed up by a few unmeasured pushes and pulls; for each concurrency, that many
clients push distinct images at once over raw HTTP (config blob POST ?digest=, layer POST + PATCH +
PUT ?digest=, manifest PUT), then pull them back at once (manifest GET, config and layer GETs
following the 307 to S3, every digest checked). Each cell prints operations/s, MiB/s, p50 and p95
latency of a whole push or pull, and errors.

Each cell also prints the CPU seconds the nodes, moto, HAProxy and the clients (this process) spent:
on a small machine they all share the same cores, so that is what bounds the figures.

Then, one operation at a time on the largest cluster, the shared-state cost of an upload: database
row writes to Wharf's tables (n_tup_ins + n_tup_upd + n_tup_del deltas of pg_stat_user_tables, so
autovacuum's catalog writes are left out), transactions (pg_stat_database xact_commit: read-only ones
too), WAL bytes (the whole server's, autovacuum's included), S3 requests (moto's request log, by
operation) and Redis commands, each divided by the number of operations, for a blob in one PATCH, the
same blob in several PATCHes (some smaller than an S3 part), an image push and an image pull.
PostgreSQL publishes a backend's counters up to 10 s after it goes idle, so every reading waits for
them to settle (a row for doing nothing over such a wait shows the noise).

Not a test: it asserts nothing and only prints figures. It needs PostgreSQL and Redis; run it as

    bash tests/services.sh .venv/bin/python bench/scaleout.py [--quick] [--size-mib 4] [--ops 64]

Every run makes a database of its own on that server (dropped at the end) and a bucket of its own.
BENCH_HUB_X=v sets HUB_X=v on every node (BENCH_HUB_WEB_WORKERS=4, BENCH_HUB_WEB_WORKER=gthread).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.registry import PASSWORD, USER, cpu_seconds  # noqa: E402
from bench.workload import Layers, Outcome, one_layer_image, run_clients  # noqa: E402
from tests.cluster import Cluster, S3Server, start_cluster, start_s3  # noqa: E402
from tests.e2e.clients import Account, RegistryApi, Target  # noqa: E402
from tests.e2e.images import OCI_MANIFEST  # noqa: E402
from tests.live import free_port, wait_until  # noqa: E402

USAGE = "bash tests/services.sh .venv/bin/python bench/scaleout.py [--quick]"
MIB = 1 << 20
STATS_IDLE_FLUSH_SECONDS = 11  # PGSTAT_IDLE_INTERVAL (10 s) and a margin


class BenchError(Exception):
    """A request of an operation answered something else than the protocol says."""


def expect(response, status: int, what: str):
    if response.status_code != status:
        raise BenchError(f"{what}: {response.status_code} {response.text[:200]!r}")
    return response


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- The services ------------------------------------------------------------------------------


def server_urls() -> tuple[str, str]:
    """PostgreSQL's and Redis's URLs from tests/services.sh (or DATABASE_URL), or exit 2 saying how to run."""
    database = os.environ.get("HUB_TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL") or ""
    redis_url = os.environ.get("REDIS_URL") or ""
    if not database.startswith(("postgres://", "postgresql://")) or not redis_url:
        print("bench/scaleout.py needs a PostgreSQL server (HUB_TEST_POSTGRES_URL or DATABASE_URL) and Redis "
              f"(REDIS_URL); tests/services.sh starts private ones:\n    {USAGE}", file=sys.stderr)
        sys.exit(2)
    return database, redis_url


@dataclass
class Database:
    """A database of this run's own on the server `server_url` names."""

    server_url: str
    name: str = field(default_factory=lambda: f"wharf_scaleout_{uuid.uuid4().hex[:8]}")

    def on(self, name: str) -> str:
        return urlunsplit(urlsplit(self.server_url)._replace(path=f"/{name}"))

    @property
    def url(self) -> str:
        return self.on(self.name)

    def admin(self):
        import psycopg

        return psycopg.connect(self.on("postgres"), autocommit=True)

    def create(self) -> None:
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with self.admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def prepare(work: Path, shared: dict[str, str]) -> None:
    """Migrate the fresh database once and make the bench user, as an operator would before the nodes start."""
    env = Cluster(work / "setup", shared).environment(work / "setup" / "data", free_port())
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=env, check=True)
    subprocess.run([*manage, "shell", "-c", f"from accounts.models import User; User.objects.create_user("
                    f"'{USER}', '{USER}@example.com', '{PASSWORD}')"],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def empty_bucket(s3: S3Server, bucket: str) -> None:
    """Delete every object, so moto (which keeps them in memory) does not grow from cell to cell."""
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


# --- Images and operations ---------------------------------------------------------------------


@dataclass
class Image:
    repo: str
    tag: str
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def size(self) -> int:
        return len(self.config) + len(self.layer)

    @property
    def layer_digest(self) -> str:
        return json.loads(self.manifest)["layers"][0]["digest"]


class WholeLayers(Layers):
    """Layers as bytes, and one-layer images around them."""

    def layer(self) -> tuple[bytes, str]:
        """A new layer and its digest."""
        tail, digest = self.tail()
        return self.body + tail, digest

    def image(self, repo: str, tag: str) -> Image:
        layer, layer_digest = self.layer()
        config, _config_digest, manifest = one_layer_image(layer_digest, len(layer),
                                                           f"wharf bench/scaleout.py {repo}:{tag}")
        return Image(repo=repo, tag=tag, config=config, layer=layer, manifest=manifest)


def upload(api: RegistryApi, data: bytes, digest: str, chunks: list[int] | None = None) -> int:
    """POST, a PATCH per chunk (one for the whole blob without `chunks`), PUT ?digest=."""
    location = expect(api.request("POST", api.url("blobs/uploads/")), 202, "POST upload").headers["Location"]
    offset = 0
    for size in chunks or [len(data)]:
        patch = api.request("PATCH", api.absolute(location), data=data[offset:offset + size], headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + size - 1}"})
        location = expect(patch, 202, "PATCH upload").headers["Location"]
        offset += size
    expect(api.request("PUT", api.absolute(location), params={"digest": digest}), 201, "PUT upload")
    return len(data)


def push(api: RegistryApi, image: Image) -> int:
    """The config in one request (POST ?digest=), the layer in one PATCH, then the manifest."""
    expect(api.request("POST", api.url("blobs/uploads/"), params={"digest": sha256(image.config)},
                       data=image.config, headers={"Content-Type": "application/octet-stream"}),
           201, "POST config ?digest=")
    upload(api, image.layer, image.layer_digest)
    expect(api.request("PUT", api.url(f"manifests/{image.tag}"), data=image.manifest,
                       headers={"Content-Type": OCI_MANIFEST}), 201, "PUT manifest")
    return image.size


def pull(api: RegistryApi, image: Image) -> int:
    """The manifest by tag, then its config and layer (the registry answers 307 to S3; requests follows)."""
    got = expect(api.request("GET", api.url(f"manifests/{image.tag}"), headers={"Accept": OCI_MANIFEST}),
                 200, "GET manifest")
    if got.content != image.manifest:
        raise BenchError("GET manifest: not the manifest pushed")
    manifest = got.json()
    moved = 0
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = expect(api.get_blob(descriptor["digest"]), 200, "GET blob")
        if sha256(blob.content) != descriptor["digest"]:
            raise BenchError(f"GET blob {descriptor['digest']}: other bytes")
        moved += len(blob.content)
    return moved


# --- Concurrent cells --------------------------------------------------------------------------


@dataclass
class Cell(Outcome):
    cpu: list[float] = field(default_factory=list)  # nodes, S3, HAProxy, clients

    def row(self) -> list[str]:
        done = len(self.latencies)
        return [str(done), f"{done / self.wall:.1f}", f"{self.moved / MIB / self.wall:.1f}",
                f"{self.percentile(0.5) * 1000:.0f}", f"{self.percentile(0.95) * 1000:.0f}", str(self.errors),
                " / ".join(f"{seconds:.1f}" for seconds in self.cpu), f"{self.wall:.1f}", f"{self.load:.1f}"]


def cpu_split(cluster, s3: S3Server) -> list[float]:
    """CPU seconds so far of the nodes (masters and workers), moto, HAProxy and this process."""
    nodes = []
    for node in cluster.nodes:
        children = subprocess.run(["pgrep", "-P", str(node.process.pid)], capture_output=True, text=True).stdout
        nodes += [node.process.pid, *map(int, children.split())]
    return [cpu_seconds(nodes), cpu_seconds([s3.process.pid]), cpu_seconds([cluster.balancer.process.pid]),
            cpu_seconds([os.getpid()])]


def measured(cluster, s3: S3Server, work: list[list[Callable[[], int]]]) -> Cell:
    """Each inner list on a thread of its own, all started at once (an operation returns the bytes it
    moved), with the CPU each party spent meanwhile."""
    before = cpu_split(cluster, s3)
    cell = run_clients([[("operation", operation) for operation in operations] for operations in work], Cell())
    cell.cpu = [now - then for now, then in zip(cpu_split(cluster, s3), before, strict=True)]
    return cell


def registry_apis(cluster, repos: list[str]) -> list[RegistryApi]:
    """One API object (a session of its own) a repository, all under one token for every repository.
    Not measured, so it waits out a balancer that took a busy node out (503) for a moment."""
    target = Target(kind="hub", host=cluster.host, server=cluster)
    scopes = [f"repository:{repo}:pull,push" for repo in repos]
    headers = wait_until(lambda: target.auth_headers(Account(USER, PASSWORD), scopes), timeout=30,
                         interval=1, message="a registry token")
    return [RegistryApi(target, repo, headers) for repo in repos]


def all_nodes_up(cluster) -> None:
    """Every node in service: HAProxy's checks (every 500 ms, two misses) take a node too busy to answer
    /healthz out for a while; a cell starts with all of them in."""
    names = {node.name for node in cluster.nodes}
    wait_until(lambda: cluster.balancer.servers_up() >= names, timeout=60, message=f"HAProxy to see {sorted(names)}")


def push_and_pull(cluster, s3: S3Server, nodes: int, concurrency: int, per_worker: int,
                  layers: WholeLayers) -> tuple[Cell, Cell]:
    all_nodes_up(cluster)
    repos = [f"{USER}/n{nodes}-c{concurrency}-{uuid.uuid4().hex[:6]}-w{i}" for i in range(concurrency)]
    images = [[layers.image(repo, f"v{k}") for k in range(per_worker)] for repo in repos]
    apis = registry_apis(cluster, repos)
    pushed: list[tuple[int, Image]] = []

    def pusher(i: int, image: Image) -> Callable[[], int]:
        def operation() -> int:
            moved = push(apis[i], image)
            pushed.append((i, image))
            return moved
        return operation

    pushes = measured(cluster, s3, [[pusher(i, image) for image in mine] for i, mine in enumerate(images)])
    all_nodes_up(cluster)
    apis = registry_apis(cluster, repos)  # a fresh token: a slow cell may outlive the first one
    mine: list[list[Callable[[], int]]] = [[] for _ in repos]
    for i, image in pushed:
        mine[i].append(lambda api=apis[i], image=image: pull(api, image))
    pulls = measured(cluster, s3, mine)
    return pushes, pulls


# --- Shared-state cost -------------------------------------------------------------------------

S3_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


def s3_operation(method: str, target: str) -> str:
    """The S3 API call a request line of moto's log is (by method and query: moto does not log x-id)."""
    query = parse_qs(urlsplit(target).query, keep_blank_values=True)
    if method == "GET":
        return "ListObjectsV2" if "list-type" in query else "GetObject"
    if method == "PUT":
        return "UploadPart(Copy)" if "partNumber" in query else "PutObject"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return {"HEAD": "HeadObject"}.get(method, method)


@dataclass
class Cost:
    """What `count` operations of one kind cost the shared state, in all."""

    label: str
    count: int
    db: dict[str, int]  # transactions, wal (bytes), inserted, updated, deleted
    tables: dict[str, list[int]]  # table: [inserted, updated, deleted]
    requests: Counter  # S3 operation: requests
    redis_commands: int

    @staticmethod
    def least(costs: tuple[Cost, ...]) -> Cost:
        """Each figure's smallest over several measurements of the same kind."""
        fewest = min(costs, key=lambda cost: sum(cost.requests.values()))
        return Cost(costs[0].label, costs[0].count, {key: min(cost.db[key] for cost in costs) for key in costs[0].db},
                    min((cost.tables for cost in costs), key=lambda tables: sum(map(sum, tables.values()))),
                    fewest.requests, min(cost.redis_commands for cost in costs))


@dataclass
class Reading:
    database: dict[str, int]
    tables: dict[str, tuple[int, int, int]]
    s3_offset: int
    redis_commands: int


class SharedState:
    """Readings of what the nodes share: PostgreSQL's statistics, moto's request log, Redis's counter."""

    def __init__(self, database: Database, s3: S3Server, redis_url: str) -> None:
        import redis

        self.database, self.s3 = database, s3
        self.redis = redis.Redis.from_url(redis_url)
        self.admin = database.admin()
        self.quiet_autovacuum()
        self.last_activity = time.monotonic()

    def close(self) -> None:
        self.admin.close()

    def quiet_autovacuum(self) -> None:
        """Keep autovacuum off Wharf's tables, analyze them, then vacuum everything (the catalogs those
        two wrote too): autovacuum's transactions and WAL would land in whichever reading it overlaps."""
        import psycopg

        with psycopg.connect(self.database.url, autocommit=True) as connection:
            for (name,) in connection.execute("SELECT relid::regclass::text FROM pg_stat_user_tables").fetchall():
                connection.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
            connection.execute("ANALYZE")
            connection.execute("VACUUM")

    def _database(self) -> dict[str, int]:
        row = self.admin.execute(
            "SELECT xact_commit, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint FROM pg_stat_database WHERE datname = %s",
            [self.database.name]).fetchone()
        return dict(zip(("transactions", "wal"), row, strict=True))

    def _tables(self) -> dict[str, tuple[int, int, int]]:
        import psycopg

        with psycopg.connect(self.database.url, autocommit=True) as connection:  # one transaction of ours
            rows = connection.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables").fetchall()
        return {name: (ins, upd, dele) for name, ins, upd, dele in rows}

    def read(self) -> Reading:
        """Wait until every node's backend has published its counters, then read everything."""
        time.sleep(max(0.0, STATS_IDLE_FLUSH_SECONDS - (time.monotonic() - self.last_activity)))
        tables = self._tables()
        database = self._database()
        while True:  # our own connection's counters too are published as its backend exits
            time.sleep(1)
            if (again := self._database()) == database:
                break
            database = again
        return Reading(database=database, tables=tables, s3_offset=self.s3.log_path.stat().st_size,
                       redis_commands=self.redis.info("stats")["total_commands_processed"])

    def s3_requests(self, before: Reading, after: Reading) -> Counter:
        with open(self.s3.log_path, "rb") as log:
            log.seek(before.s3_offset)
            text = log.read(after.s3_offset - before.s3_offset).decode(errors="replace")
        return Counter(s3_operation(method, target) for method, target, _ in S3_LINE.findall(text)
                       if not target.startswith("/moto-api"))

    def measure(self, label: str, count: int, operation: Callable[[int], object],
                before: Reading) -> tuple[Cost, Reading]:
        """Run `operation(0..count-1)` one at a time; the cost per operation and the reading after."""
        for i in range(count):
            operation(i)
        self.last_activity = time.monotonic()
        after = self.read()
        db = {key: after.database[key] - before.database[key] for key in before.database}
        db["transactions"] -= 2  # ours, reading pg_stat_user_tables: connecting is one, the query another
        tables = {}
        for name, counts in after.tables.items():
            delta = [now - then for now, then in zip(counts, before.tables.get(name, (0, 0, 0)), strict=True)]
            if any(delta):
                tables[name] = delta
        for column, key in enumerate(("inserted", "updated", "deleted")):
            db[key] = sum(delta[column] for delta in tables.values())
        requests = self.s3_requests(before, after)
        redis_commands = after.redis_commands - before.redis_commands - 1  # our INFO
        return Cost(label, count, db, tables, requests, redis_commands), after


def shared_state_costs(cluster, state: SharedState, args: argparse.Namespace) -> list[Cost]:
    """The cost of each kind of operation, `args.cost_ops` of each one at a time, in `args.cost_rounds`
    rounds; each figure is its smallest over the rounds (what else runs on the server only adds)."""
    count = args.cost_ops
    chunks = [round(float(mib) * MIB) for mib in args.chunks_mib.split(",")]
    blob_layers, image_layers = WholeLayers(sum(chunks)), WholeLayers(round(args.size_mib * MIB))
    repo = f"{USER}/shared-state-{uuid.uuid4().hex[:6]}"
    (api,) = registry_apis(cluster, [repo])
    push(api, image_layers.image(repo, "warm-up"))  # the repository's row exists before the first reading
    state.last_activity = time.monotonic()
    chunked = "+".join(args.chunks_mib.split(","))
    rounds: list[list[Cost]] = []
    reading = state.read()
    for number in range(args.cost_rounds):
        blobs = [blob_layers.layer() for _ in range(2 * count)]
        images = [image_layers.image(repo, f"r{number}-{i}") for i in range(count)]
        kinds = [
            ("nothing: the cluster idle as long (the noise floor)", 1, lambda i: None),
            (f"blob upload, one PATCH of {sum(chunks) / MIB:g} MiB", count,
             lambda i, blobs=blobs: upload(api, *blobs[i])),
            (f"blob upload, PATCHes of {chunked} MiB", count,
             lambda i, blobs=blobs: upload(api, *blobs[count + i], chunks)),
            (f"image push (config POST ?digest=, {args.size_mib:g} MiB layer in one PATCH, manifest PUT)", count,
             lambda i, images=images: push(api, images[i])),
            ("image pull (manifest GET, config and layer GETs via S3)", count,
             lambda i, images=images: pull(api, images[i])),
        ]
        rounds.append([])
        for label, times, operation in kinds:
            cost, reading = state.measure(label, times, operation, reading)
            rounds[-1].append(cost)
        print(f"  shared-state round {number + 1} of {args.cost_rounds} measured", flush=True)
    return [Cost.least(costs) for costs in zip(*rounds, strict=True)]


# --- Output ------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_costs(costs: list[Cost], nodes: int, rounds: int) -> None:
    print(f"\n## Shared-state cost per operation ({nodes} nodes, one operation at a time, "
          f"the least of {rounds} rounds)\n")
    rows = []
    for cost in costs:
        db, count = cost.db, cost.count
        writes = db["inserted"] + db["updated"] + db["deleted"]
        rows.append([cost.label, str(count), f"{writes / count:.1f}",
                     f"{db['inserted'] / count:g} / {db['updated'] / count:g} / {db['deleted'] / count:g}",
                     f"{db['transactions'] / count:.1f}", f"{db['wal'] / 1024 / count:.1f}",
                     f"{sum(cost.requests.values()) / count:.1f}", f"{cost.redis_commands / count:.1f}"])
    table(["operation", "n", "DB row writes", "ins / upd / del", "DB transactions", "WAL KiB", "S3 requests",
           "Redis commands"], rows)
    print("\n(Row writes: Wharf's tables. Transactions count read-only ones too; WAL is the server's, "
          "autovacuum's included.)")
    print("\nPer operation, by S3 call and by table written (+inserted ~updated -deleted):\n")
    for cost in costs:
        count = cost.count
        s3 = ", ".join(f"{name} {n / count:g}" for name, n in sorted(cost.requests.items())) or "none"
        written = ", ".join(f"{name} " + " ".join(f"{sign}{n / count:g}" for sign, n in zip("+~-", delta, strict=True)
                                                    if n)
                            for name, delta in sorted(cost.tables.items())) or "none"
        print(f"- {cost.label}: S3 {s3}; tables {written}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,2,3", help="node counts, each a fresh cluster")
    parser.add_argument("--concurrency", default="1,8,32", help="concurrent clients of each cell")
    parser.add_argument("--size-mib", type=float, default=4, help="layer size of each pushed image (MiB)")
    parser.add_argument("--ops", type=int, default=64,
                        help="pushes (then pulls) per cell, shared among the clients (each does at least 2)")
    parser.add_argument("--cost-ops", type=int, default=8, help="operations of each kind for the shared-state cost")
    parser.add_argument("--cost-rounds", type=int, default=2, help="rounds of the shared-state measurement")
    parser.add_argument("--chunks-mib", default="2,4,6",
                        help="PATCH sizes of the chunked upload (MiB); the one-PATCH upload sends their sum")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 and 2 nodes, 1 and 4 clients, 1 MiB layers, few operations")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.concurrency, args.size_mib, args.ops, args.cost_ops, args.chunks_mib = (
            "1,2", "1,4", 1, 8, 2, "1,2,3")
    database_server, redis_url = server_urls()
    node_counts = [int(n) for n in args.nodes.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    work = Path(tempfile.mkdtemp(prefix="wharf-scaleout-"))
    database = Database(database_server)
    layers = WholeLayers(round(args.size_mib * MIB))
    print(f"# Wharf scale-out benchmark: {os.cpu_count()} CPUs, nodes {args.nodes}, clients {args.concurrency}, "
          f"{args.size_mib:g} MiB layers, {args.ops} pushes then pulls per cell", flush=True)
    results: list[list[str]] = []
    costs: list[Cost] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        database.create()
        cleanup.callback(database.drop)
        s3 = start_s3(work / "s3")
        cleanup.callback(s3.stop)
        bucket = s3.make_bucket("scaleout")
        shared = {"DJANGO_SETTINGS_MODULE": "hub.settings", "DATABASE_URL": database.url, "REDIS_URL": redis_url,
                  "HUB_ACCESS_LOG": "", **s3.environment(bucket)}
        shared.update({k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_HUB_")})
        prepare(work, shared)
        for index, nodes in enumerate(node_counts):
            began = time.perf_counter()
            cluster = start_cluster(work / f"cluster-{index}", shared, nodes=nodes)
            try:
                print(f"{nodes} node(s) up in {time.perf_counter() - began:.0f} s", flush=True)
                # Unmeasured: every worker process's first requests (imports, clients, connections).
                push_and_pull(cluster, s3, nodes, 4 * nodes, 2, layers)
                for concurrency in concurrencies:
                    per_worker = max(2, math.ceil(args.ops / concurrency))
                    pushes, pulls = push_and_pull(cluster, s3, nodes, concurrency, per_worker, layers)
                    for kind, cell in (("push", pushes), ("pull", pulls)):
                        results.append([str(nodes), str(concurrency), kind, *cell.row()])
                        print(f"  {nodes} node(s), {concurrency:2} clients, {kind}: " + " ".join(results[-1][3:])
                              + (f"  first error: {cell.first_error}" if cell.errors else ""), flush=True)
                    empty_bucket(s3, bucket)
                if index == len(node_counts) - 1:
                    with contextlib.closing(SharedState(database, s3, redis_url)) as state:
                        costs = shared_state_costs(cluster, state, args)
            except BaseException:
                print(f"the end of every node's log:\n{cluster.log()}", file=sys.stderr)
                raise
            finally:
                cluster.stop()

    gunicorn = f"{shared.get('HUB_WEB_WORKERS', '2')} {shared.get('HUB_WEB_WORKER', 'gevent')} workers a node"
    print(f"\n## Throughput through HAProxy ({gunicorn}; {args.size_mib:g} MiB layer + config an image; "
          "latency of a whole push or pull)\n")
    table(["nodes", "clients", "op", "done", "ops/s", "MiB/s", "p50 ms", "p95 ms", "errors",
           "CPU s: nodes / S3 / HAProxy / clients", "wall s", "load"], results)
    print_costs(costs, node_counts[-1], args.cost_rounds)


if __name__ == "__main__":
    main()
