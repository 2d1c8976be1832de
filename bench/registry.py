#!/usr/bin/env python
"""Registry benchmark: Wharf under gunicorn beside the CNCF reference registry, on loopback.

Measures, in one run: skopeo push and pull of a generated single-layer image (fresh repository
names, skopeo's blob-info cache emptied so every push uploads), a raw blob upload and a blob GET
with curl, manifest GET throughput with 32 connections (wrk), and Wharf's peak RSS per gunicorn
worker during a push of a larger image. The two registries take turns run by run (Wharf, reference,
Wharf, …), each run printed with the load average. Prints medians and Wharf/reference ratios. Not a test:
it asserts nothing and only prints figures.

    .venv/bin/python bench/registry.py [--mib 512] [--big-mib 1024] [--runs 3]

Then, with both registries still up, the concurrent load of bench/registry_load.py: 16 and 64 simultaneous
skopeo pulls and pushes and zb's mixed workload (75% pulls, 25% pushes of 1, 10 and 100 MiB), printed in a
second table (--load-only: only that; --no-load: without it; --load-clients 16,64, --load-sizes 1,10,100,
--load-ops, --load-mib, --load-runs, --load-skip pull,push,mixed, --load-token-reuse).

With --ab gthread,gevent it measures Wharf alone, one gunicorn worker class against another on the
same data (--ab-limits: pull rate limits off against on, every manifest GET counted): the variants
take turns (A, B, A, B, …, --runs rounds each), so a shared host's changing
load falls on both; every round prints the load average beside its figures, then the medians.
BENCH_HUB_X=v sets HUB_X=v in the hub's environment; BENCH_ENV_X=v sets X=v (DATABASE_URL, REDIS_URL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench import registry_load  # noqa: E402
from bench.workload import settle  # noqa: E402
from tests.e2e.images import build_large_image  # noqa: E402
from tests.e2e.reference import start_reference  # noqa: E402
from tests.live import Loopback, free_port, wait_until_healthy  # noqa: E402

PY = Path(sys.executable)
USER, PASSWORD = "benchuser", "bench-password-123"
SKOPEO_CACHES = [Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
                 Path("/var/lib/containers/cache/blob-info-cache-v1.sqlite")]


class Hub(Loopback):
    def __init__(self, root: Path, *, start: bool = True) -> None:
        self.root, self.port = root, free_port()
        self.env = {**os.environ, "HUB_DATA_DIR": str(root / "data"), "PORT": str(self.port),
                    "HUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "HUB_ACCESS_LOG": "",
                    "DJANGO_SETTINGS_MODULE": "hub.settings"}
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        self.env.update({k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_HUB_")})
        self.env.update({k[len("BENCH_ENV_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_ENV_")})
        manage = [str(PY), "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=self.env, check=True)
        subprocess.run([*manage, "shell", "-c",
                        f"from accounts.models import User; User.objects.create_user('{USER}', "
                        f"'{USER}@example.com', '{PASSWORD}')"], cwd=REPO_ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        if start:
            self.start()

    def start(self, **env: str) -> None:
        """gunicorn on this hub's data, with `env` over its environment (HUB_WEB_WORKER=gthread)."""
        self.process = subprocess.Popen([str(PY.parent / "gunicorn"), "--config", "gunicorn.conf.py"],
                                        cwd=REPO_ROOT, env={**self.env, **env}, stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "gunicorn.log", "ab"))  # noqa: SIM115
        wait_until_healthy(self.url, self.process, self.root / "gunicorn.log")

    def token(self, scope: str) -> str:
        response = requests.get(f"{self.url}/token", params={"service": self.host, "scope": scope},
                                auth=(USER, PASSWORD), timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def clear_skopeo_cache(home: Path) -> None:
    for path in [*SKOPEO_CACHES, *home.glob(".local/share/containers/cache/*")]:
        path.unlink(missing_ok=True)


def timed(argv: list[str], env: dict, stdin_path: Path | None = None) -> float:
    stdin = open(stdin_path, "rb") if stdin_path else None  # noqa: SIM115
    started = time.perf_counter()
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=stdin)
    finally:
        if stdin:
            stdin.close()
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def skopeo_push(target: str, image_ref: str, repo: str, creds: str | None, home: Path) -> float:
    clear_skopeo_cache(home)
    settle()
    argv = ["skopeo", "copy", "--dest-tls-verify=false", image_ref, f"docker://{target}/{repo}:bench"]
    if creds:
        argv[2:2] = ["--dest-creds", creds]
    return timed(argv, {**os.environ, "HOME": str(home)})


def skopeo_pull(target: str, repo: str, creds: str | None, home: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    clear_skopeo_cache(home)
    settle()
    argv = ["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}/{repo}:bench", f"dir:{out}"]
    if creds:
        argv[2:2] = ["--src-creds", creds]
    return timed(argv, {**os.environ, "HOME": str(home)})


def curl_upload(url: str, path: Path, digest: str, repo: str, token: str | None) -> float:
    """POST to open an upload, then one streamed PUT of the whole blob with curl (both timed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    settle()
    started = time.perf_counter()
    opened = requests.post(f"{url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=30)
    opened.raise_for_status()
    location = urljoin(url + "/", opened.headers["Location"])
    location += ("&" if "?" in location else "?") + f"digest={digest}"
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    argv = ["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Content-Type: application/octet-stream",
            *auth, "-T", str(path), location]
    timed(argv, dict(os.environ))
    return time.perf_counter() - started


def curl_get(url: str, digest: str, repo: str, token: str | None) -> float:
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    argv = ["curl", "-sS", "-f", "-L", "-o", "/dev/null", *headers, f"{url}/v2/{repo}/blobs/{digest}"]
    settle()
    return timed(argv, dict(os.environ))


def wrk_script(token: str | None, work: Path) -> Path:
    script = work / f"wrk-{time.monotonic_ns()}.lua"
    lines = ['wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    script.write_text("\n".join(lines) + "\n")
    return script


def wrk(url: str, script: Path, seconds: int) -> tuple[float, int]:
    """Requests per second and requests made, 32 connections on 2 threads; errors raise."""
    # --timeout 10s: a request slower than wrk's default 2 s on a busy host is slow, not an error.
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                         capture_output=True, text=True).stdout
    non_2xx = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if non_2xx:
        raise RuntimeError(f"wrk saw errors: {non_2xx}")
    rate = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    made = int(next(line.split()[0] for line in out.splitlines() if " requests in " in line))
    return rate, made


def wrk_manifest(url: str, repo: str, token: str | None, seconds: int, work: Path) -> float:
    script = wrk_script(token, work)
    wrk(f"{url}/v2/{repo}/manifests/bench", script, 2)  # warm up (connections, caches), then measure
    return wrk(f"{url}/v2/{repo}/manifests/bench", script, seconds)[0]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_during(hub: Hub, action) -> float:
    peak, done = 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            for pid in hub.worker_pids():
                peak = max(peak, rss_mib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return peak


AB_ROWS = {  # key: (label, format)
    "push": ("skopeo push (s)", "{:.2f}"),
    "pull": ("skopeo pull (s)", "{:.2f}"),
    "upload": ("blob upload, curl POST + PUT (MiB/s)", "{:.0f}"),
    "get": ("blob GET, curl (MiB/s)", "{:.0f}"),
    "manifest": ("manifest GET, wrk 32 connections (req/s)", "{:.0f}"),
    "cpu": ("worker CPU per manifest GET (ms)", "{:.3f}"),
}


def ab_round(hub: Hub, worker: str, env: dict[str, str], image, layer_path: Path, layer_digest: str, mib: float,
             args: argparse.Namespace, home: Path, work: Path) -> dict[str, float]:
    """One round of every measurement on a gunicorn started with `env` (the variant named `worker`)."""
    hub.start(**env)
    worker = worker.replace(" ", "-")
    try:
        creds = f"{USER}:{PASSWORD}"
        repo = f"{USER}/push-{worker}-{time.monotonic_ns()}"
        figures = {"push": skopeo_push(hub.host, image.ref, repo, creds, home),
                   "pull": skopeo_pull(hub.host, repo, creds, home, work / "pulled")}
        raw_repo = f"{USER}/raw-{worker}-{time.monotonic_ns()}"
        token = hub.token(f"repository:{raw_repo}:pull,push")
        figures["upload"] = mib / curl_upload(hub.url, layer_path, layer_digest, raw_repo, token)
        figures["get"] = mib / statistics.median(curl_get(hub.url, layer_digest, raw_repo, token)
                                                 for _ in range(5))
        url = f"{hub.url}/v2/{repo}/manifests/bench"
        script = wrk_script(hub.token(f"repository:{repo}:pull"), work)
        wrk(url, script, 2)  # warm up (connections, caches), then measure
        cpu_before = cpu_seconds(hub.worker_pids())
        figures["manifest"], made = wrk(url, script, args.wrk_seconds)
        figures["cpu"] = (cpu_seconds(hub.worker_pids()) - cpu_before) * 1000 / made
    finally:
        hub.stop()
    return figures


# --ab-limits: the same hub with pull rate limits off and on (a limit no run reaches, so every manifest
# GET of the signed-in bench user is counted: the cost of counting, not of refusing).
LIMIT_VARIANTS = {"limits off": {}, "limits on": {"HUB_PULL_LIMIT_USER": "1000000000",
                                                  "HUB_PULL_LIMIT_ANONYMOUS": "1000000000"}}


def main_ab(args: argparse.Namespace) -> None:
    variants = LIMIT_VARIANTS if args.ab_limits else {worker: {"HUB_WEB_WORKER": worker}
                                                      for worker in args.ab.split(",")}
    workers = list(variants)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-"))
    home = work / "home"
    home.mkdir()
    print(f"# Wharf, {' against '.join(workers)} ({args.mib} MiB image, "
          f"{args.runs} interleaved rounds each, median shown)")
    image = build_large_image(work / "image", args.mib, tag="bench")
    manifest = json.loads(image.blob_path(image.manifest_descriptor["digest"]).read_text())
    layer_digest = manifest["layers"][0]["digest"]
    layer_path = image.blob_path(layer_digest)
    mib = layer_path.stat().st_size / 2**20
    hub = Hub(work / "hub", start=False)
    rounds: dict[str, list[dict[str, float]]] = {worker: [] for worker in workers}
    loads: dict[str, list[float]] = {worker: [] for worker in workers}
    try:
        for run in range(args.runs):
            for worker in workers:
                load = os.getloadavg()[0]
                figures = ab_round(hub, worker, variants[worker], image, layer_path, layer_digest, mib, args,
                                   home, work)
                rounds[worker].append(figures)
                loads[worker].append(load)
                shown = " ".join(f"{key} {AB_ROWS[key][1].format(value)}" for key, value in figures.items())
                print(f"  round {run + 1} {worker:8} load {load:.2f} → {os.getloadavg()[0]:.2f}: {shown}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"| measurement ({mib:.0f} MiB layer) | " + " | ".join(workers) + f" | {workers[-1]}/{workers[0]} |")
    print("|---|" + "---|" * (len(workers) + 1))
    for key, (label, fmt) in AB_ROWS.items():
        medians = [statistics.median(r[key] for r in rounds[worker]) for worker in workers]
        ratio = medians[-1] / medians[0] if medians[0] else float("nan")
        print(f"| {label} | " + " | ".join(fmt.format(m) for m in medians) + f" | {ratio:.2f}× |")
    print("| load average (1 min) at the rounds' start | "
          + " | ".join(f"{min(loads[w]):.1f}–{max(loads[w]):.1f}" for w in workers) + " | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="image size for push/pull (MiB)")
    parser.add_argument("--big-mib", type=int, default=1024, help="image size for the RSS measurement (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--ab", metavar="CLASS,CLASS", help="Wharf alone, worker classes in turn (gthread,gevent)")
    parser.add_argument("--ab-limits", action="store_true", help="Wharf alone, pull rate limits off and on in turn")
    registry_load.add_arguments(parser)
    args = parser.parse_args()
    if args.ab or args.ab_limits:
        return main_ab(args)
    if args.load_only:
        return main_load(args)

    work = Path(tempfile.mkdtemp(prefix="wharf-bench-"))
    home = work / "home"
    home.mkdir()
    print(f"# Wharf registry benchmark ({args.mib} MiB image, {args.runs} runs, median shown)")
    print(f"building a {args.mib} MiB single-layer image …", flush=True)
    image = build_large_image(work / "image", args.mib, tag="bench")
    manifest = json.loads(image.blob_path(image.manifest_descriptor["digest"]).read_text())
    layer_digest = manifest["layers"][0]["digest"]
    layer_path = image.blob_path(layer_digest)

    hub = Hub(work / "hub")
    reference = start_reference(work / "reference")
    results: dict[str, dict[str, float]] = {"hub": {}, "reference": {}}
    targets = (("hub", hub.host, f"{USER}:{PASSWORD}"), ("reference", reference.host, None))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in targets}
    repos: dict[str, str] = {}
    try:
        # The two registries take turns, run by run: a shared host's changing load falls on both.
        for run in range(args.runs):
            for name, target, creds in targets:
                url, load = f"http://{target}", os.getloadavg()[0]
                repos[name] = repo = f"{USER}/push{run}-{time.monotonic_ns()}"
                raw_repo = f"{USER}/raw{run}-{time.monotonic_ns()}"
                token = hub.token(f"repository:{raw_repo}:pull,push") if name == "hub" else None
                figures = {  # in this order: the pull reads what the push stored
                    "skopeo push (s)": skopeo_push(target, image.ref, repo, creds, home),
                    "skopeo pull (s)": skopeo_pull(target, repo, creds, home, work / "pulled"),
                    "blob upload, curl (s)": curl_upload(url, layer_path, layer_digest, raw_repo, token),
                    "blob GET, curl (s)": curl_get(url, layer_digest, raw_repo, token),
                }
                runs[name].append(figures)
                print(f"  {name} run {run + 1}: " + " ".join(f"{key.split(' (')[0]} {value:.2f}s"
                                                             for key, value in figures.items())
                      + f" (load average {load:.1f})", flush=True)
        for name, target, _ in targets:
            token = hub.token(f"repository:{repos[name]}:pull") if name == "hub" else None
            results[name] = {key: statistics.median(figures[key] for figures in runs[name]) for key in runs[name][0]}
            results[name]["manifest GET (req/s)"] = wrk_manifest(f"http://{target}", repos[name], token,
                                                                 args.wrk_seconds, work)
        print(f"building a {args.big_mib} MiB image for the memory measurement …", flush=True)
        big = build_large_image(work / "big", args.big_mib, tag="bench")
        peak = peak_rss_during(hub, lambda: skopeo_push(hub.host, big.ref, f"{USER}/big{time.monotonic_ns()}",
                                                          f"{USER}:{PASSWORD}", home))
        load_targets = loaded(hub, reference)
        load_rows = [] if args.no_load else registry_load.run(args, work, load_targets, USER)
    finally:
        hub.stop()
        reference.stop()

    print()
    print(f"| measurement ({args.mib} MiB) | Wharf | reference | Wharf/reference | target |")
    print("|---|---|---|---|---|")
    # Issue 18's targets (and, in brackets, the margin it asks for against ±20 % runs on shared machines).
    verdicts = {"skopeo push (s)": ("≤ 0.9× (0.8×)", lambda r: r <= 0.9),
                "skopeo pull (s)": ("≤ 1.0× (0.85×)", lambda r: r <= 1.0),
                "blob upload, curl (s)": ("—", None), "blob GET, curl (s)": ("≤ 1.0×", lambda r: r <= 1.0),
                "manifest GET (req/s)": ("≥ 2.0× (2.3×)", lambda r: r >= 2.0)}
    for key, (target, check) in verdicts.items():
        ours, theirs = results["hub"][key], results["reference"][key]
        ratio = ours / theirs if theirs else float("nan")
        # judged on the ratio as printed: "1.00×" is never "NOT met" against "≤ 1.0×"
        verdict = "" if check is None else (" met" if check(round(ratio, 2)) else " NOT met")
        print(f"| {key} | {ours:.2f} | {theirs:.2f} | {ratio:.2f}× | {target}{verdict} |")
    verdict = "met" if peak < 150 else "NOT met"
    print(f"| peak RSS per gunicorn worker, {args.big_mib} MiB push | {peak:.0f} MiB | | | < 150 MiB {verdict} |")
    if load_rows:
        registry_load.print_report(load_rows, load_targets)
    shutil.rmtree(work, ignore_errors=True)


def loaded(hub: Hub, reference) -> list[registry_load.LoadTarget]:
    """The two registries for bench/registry_load.py: Wharf with token auth as the bench user, the reference
    without auth."""
    return [registry_load.LoadTarget("Wharf", hub.host, (USER, PASSWORD)),
            registry_load.LoadTarget("reference", reference.host)]


def main_load(args: argparse.Namespace) -> None:
    """--load-only: both registries started as for the full run, then only the concurrent load."""
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-"))
    hub = Hub(work / "hub")
    reference = start_reference(work / "reference")
    try:
        targets = loaded(hub, reference)
        rows = registry_load.run(args, work, targets, USER)
    finally:
        hub.stop()
        reference.stop()
    registry_load.print_report(rows, targets)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
