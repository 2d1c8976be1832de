#!/usr/bin/env python
"""Webhook benchmark: push-to-delivery latency and delivery rate with one Celery worker.

Starts its own hub on a fresh data dir (gunicorn and ONE Celery worker with beat, as `make run`
does), with the embedded defaults (SQLite, filesystem broker), or Redis as broker and cache when
REDIS_URL is set (`bash tests/services.sh .venv/bin/python bench/webhooks.py`). A repository gets
`--hooks` webhooks (default 50) to a threaded receiver on loopback that records when each delivery
arrives; `--tags` tags (default 20) are pushed one after another through the registry HTTP API.
A tag's push time is when its manifest PUT completed; a delivery's latency is its arrival minus
that. Prints a markdown table; asserts nothing. Target: p95 < 2 s.

The table also gives the CPU time gunicorn and the worker used (from /proc: Linux), the failed
attempts the deliveries logged (each is retried a minute later: an outlier, not a loss) and the
load average, since on a shared machine other work moves the latencies more than anything here.

    .venv/bin/python bench/webhooks.py [--hooks 50] [--tags 20] [--concurrency 2]

BENCH_ENV_X=v sets X=v in the hub's environment (BENCH_ENV_DATABASE_URL=postgres://… for PostgreSQL).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.clients import Account, Target  # noqa: E402
from tests.live import Loopback, free_port, wait_until, wait_until_healthy  # noqa: E402

PY = Path(sys.executable)
USER, PASSWORD = "benchuser", "bench-password-123"
REPO = f"{USER}/hooked"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Receiver:
    """Answers 200 to every POST and records (arrival time, path, tag, delivery id)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                tag = json.loads(body).get("push_data", {}).get("tag", "")
                with receiver.lock:
                    receiver.arrivals.append((now, self.path, tag, self.headers.get("X-Hub-Delivery", "")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Hub(Loopback):
    """gunicorn and one Celery worker (with beat) on a fresh data dir."""

    def __init__(self, root: Path, concurrency: int) -> None:
        self.root, self.port = root, free_port()
        self.env = {**os.environ, "HUB_DATA_DIR": str(root / "data"), "PORT": str(self.port),
                    "HUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "HUB_ACCESS_LOG": "",
                    "DJANGO_SETTINGS_MODULE": "hub.settings", "HUB_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
        self.env.pop("DATABASE_URL", None)  # SQLite in the data dir; Redis only when REDIS_URL is set
        self.env.pop("HUB_CELERY_EAGER", None)
        # BENCH_HUB_X=v sets HUB_X=v (as in bench/registry.py); BENCH_ENV_X=v sets X=v (DATABASE_URL, …).
        self.env.update({k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_HUB_")})
        self.env.update({k[len("BENCH_ENV_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_ENV_")})
        subprocess.run([str(PY), "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=self.env,
                       check=True)
        self.processes = [
            subprocess.Popen([str(PY.parent / "gunicorn"), "--config", "gunicorn.conf.py"], cwd=REPO_ROOT,
                             env=self.env, stdout=subprocess.DEVNULL,
                             stderr=open(root / "gunicorn.log", "wb")),  # noqa: SIM115
            subprocess.Popen([str(PY.parent / "celery"), "-A", "hub", "worker", "-B", "-Q", "celery",
                              "--concurrency", str(concurrency), "--loglevel", "WARNING",
                              "--schedule", str(root / "beat-schedule")], cwd=REPO_ROOT, env=self.env,
                             stdout=subprocess.DEVNULL, stderr=open(root / "celery.log", "wb")),  # noqa: SIM115
        ]
        wait_until_healthy(self.url, self.processes[0], root / "gunicorn.log")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by gunicorn and by the worker, each with its child processes (Linux)."""
        return {name: sum(_cpu(pid) for pid in _tree(process.pid))
                for name, process in zip(("gunicorn", "worker"), self.processes, strict=True)}

    def shell(self, code: str) -> str:
        return subprocess.run([str(PY), "manage.py", "shell", "-c", code], cwd=REPO_ROOT, env=self.env,
                              check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
            pids += [int(child) for child in task.read_text().split()]
        index += 1
    return pids


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def setup(hub: Hub, receiver: Receiver, hooks: int) -> None:
    hub.shell(
        "from accounts.models import User, Namespace\n"
        "from repositories.models import Repository\n"
        "from webhooks import services\n"
        f"user = User.objects.create_user({USER!r}, '{USER}@example.com', {PASSWORD!r})\n"
        "repo = Repository.objects.create(namespace=Namespace.objects.get(user=user), name='hooked')\n"
        f"for i in range({hooks}):\n"
        f"    services.webhook_create(repository=repo, name=f'hook{{i}}', "
        f"url=f'http://127.0.0.1:{receiver.port}/hook/{{i}}', events=['push'], user=user)\n"
    )


def push_tags(hub: Hub, tags: int) -> dict[str, float]:
    """Upload the blobs, then PUT one manifest per tag back to back; when each PUT completed."""
    api = Target(kind="hub", host=hub.host, server=hub).api(Account(USER, PASSWORD), REPO)
    layer = b"wharf webhook bench layer\n"
    blobs = [layer]
    manifests = {}
    for n in range(tags):
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "comment": f"tag {n}",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        blobs.append(config)
        manifests[f"t{n:02d}"] = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}],
        }).encode()
    for data in blobs:
        response = api.push_blob(data)
        if response.status_code != 201:
            raise RuntimeError(f"blob upload: {response.status_code} {response.text[:500]}")
    pushed = {"": time.perf_counter()}  # "": when the first manifest PUT started
    for tag, manifest in manifests.items():
        response = api.request("PUT", api.url(f"manifests/{tag}"), data=manifest,
                               headers={"Content-Type": OCI_MANIFEST})
        pushed[tag] = time.perf_counter()
        if response.status_code != 201:
            raise RuntimeError(f"manifest PUT {tag}: {response.status_code} {response.text[:500]}")
    return pushed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hooks", type=int, default=50)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("HUB_WORKER_CONCURRENCY", "2")),
                        help="the worker's processes (make run's default: HUB_WORKER_CONCURRENCY or 2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for deliveries after this")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wharf-bench-hooks-"))
    broker = "Redis" if os.environ.get("REDIS_URL") else "filesystem (embedded)"
    receiver = Receiver()
    hub = Hub(work / "hub", args.concurrency)
    database = "PostgreSQL" if hub.env.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    print(f"# Wharf webhook benchmark: {args.hooks} webhooks × {args.tags} tags, one worker "
          f"(concurrency {args.concurrency}), broker {broker}, database {database}", flush=True)
    expected = args.hooks * args.tags
    try:
        setup(hub, receiver, args.hooks)
        time.sleep(1)  # let the worker settle
        cpu_before = hub.cpu_seconds()
        pushed = push_tags(hub, args.tags)
        pushes_done = time.perf_counter()
        try:
            wait_until(lambda: len(receiver.arrivals) >= expected, timeout=args.timeout, interval=0.05,
                       message=f"{expected} deliveries")
        except AssertionError as exc:
            print(f"only {len(receiver.arrivals)} of {expected} deliveries arrived: {exc}")
        # A moment for duplicates (there must be none), then count.
        time.sleep(0.5)
        cpu_after = hub.cpu_seconds()
        retried = json.loads(hub.shell(
            "import json\n"
            "from webhooks.models import Delivery\n"
            "print(json.dumps([entry for log in Delivery.objects.values_list('attempt_log', flat=True)\n"
            "                  for entry in log if entry['error']]))\n"
        ).strip().splitlines()[-1])  # the last line: `shell` may announce its automatic imports first
    finally:
        hub.stop()
        receiver.close()

    arrivals = list(receiver.arrivals)
    started = pushed.pop("")
    latencies = [at - pushed[tag] for at, _, tag, _ in arrivals if tag in pushed]
    first_push = min(pushed.values())
    last = max(at for at, *_ in arrivals) if arrivals else first_push
    push_times = sorted(pushed.values())
    push_gaps = [b - a for a, b in itertools.pairwise(push_times)]
    rate = len(arrivals) / max(last - first_push, 1e-9)
    unique = len({delivery for *_, delivery in arrivals})
    p50, p95 = (percentile(latencies, 0.5), percentile(latencies, 0.95)) if latencies else (float("nan"),) * 2
    print()
    print(f"| {broker}, {database}, 1 worker × {args.concurrency} | value | target |")
    print("|---|---|---|")
    print(f"| deliveries received / expected | {len(arrivals)} / {expected} ({unique} distinct) | all, once |")
    print(f"| push-to-delivery latency p50 | {p50:.2f} s | |")
    print(f"| push-to-delivery latency p95 | {p95:.2f} s | < 2 s {'met' if p95 < 2 else 'NOT met'} |")
    print(f"| push-to-delivery latency max | {max(latencies, default=float('nan')):.2f} s | |")
    print(f"| deliveries per second (first push done → last arrival) | {rate:.0f} | |")
    print(f"| {args.tags} manifest PUTs, back to back | {pushes_done - started:.2f} s "
          f"(median {statistics.median(push_gaps) if push_gaps else 0:.3f} s each) | |")
    print(f"| last delivery after the last push | {last - push_times[-1]:.2f} s | |")
    print(f"| failed attempts (retried later) | {len(retried)}"
          f"{': ' + '; '.join(sorted({entry['error'] for entry in retried}))[:300] if retried else ''} | none |")
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    print(f"| CPU: worker (all processes) per delivery | {cpu['worker'] / max(len(arrivals), 1) * 1000:.2f} ms "
          f"({cpu['worker']:.2f} s) | |")
    print(f"| CPU: gunicorn per push (blobs, manifest, {args.hooks} deliveries made) | "
          f"{cpu['gunicorn'] / args.tags * 1000:.0f} ms ({cpu['gunicorn']:.2f} s) | |")
    print(f"| load average (1 min) at the end | {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs | |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
