#!/usr/bin/env python
"""Registry benchmark: Wharf under gunicorn beside the CNCF reference registry, on loopback.

Measures, in one run: skopeo push and pull of a generated single-layer image (fresh repository
names, skopeo's blob-info cache emptied so every push uploads), a raw blob upload and a blob GET
with curl, manifest GET throughput with 32 connections (wrk), and Wharf's peak RSS per gunicorn
worker during a push of a larger image. Prints medians and Wharf/reference ratios. Not a test:
it asserts nothing and only prints figures.

    .venv/bin/python bench/registry.py [--mib 512] [--big-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
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

from tests.e2e.images import build_large_image  # noqa: E402
from tests.e2e.reference import start_reference  # noqa: E402
from tests.live import Loopback, free_port, wait_until_healthy  # noqa: E402

PY = Path(sys.executable)
USER, PASSWORD = "benchuser", "bench-password-123"
SKOPEO_CACHES = [Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb"),
                 Path("/var/lib/containers/cache/blob-info-cache-v1.sqlite")]


class Hub(Loopback):
    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.env = {**os.environ, "HUB_DATA_DIR": str(root / "data"), "PORT": str(self.port),
                    "HUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "HUB_ACCESS_LOG": "",
                    "DJANGO_SETTINGS_MODULE": "hub.settings"}
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        self.env.update({k[len("BENCH_"):]: v for k, v in os.environ.items() if k.startswith("BENCH_HUB_")})
        manage = [str(PY), "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=self.env, check=True)
        subprocess.run([*manage, "shell", "-c",
                        f"from accounts.models import User; User.objects.create_user('{USER}', "
                        f"'{USER}@example.com', '{PASSWORD}')"], cwd=REPO_ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        self.process = subprocess.Popen([str(PY.parent / "gunicorn"), "--config", "gunicorn.conf.py"],
                                        cwd=REPO_ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=open(root / "gunicorn.log", "wb"))  # noqa: SIM115
        wait_until_healthy(self.url, self.process, root / "gunicorn.log")

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
    argv = ["skopeo", "copy", "--dest-tls-verify=false", image_ref, f"docker://{target}/{repo}:bench"]
    if creds:
        argv[2:2] = ["--dest-creds", creds]
    return timed(argv, {**os.environ, "HOME": str(home)})


def skopeo_pull(target: str, repo: str, creds: str | None, home: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    clear_skopeo_cache(home)
    argv = ["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}/{repo}:bench", f"dir:{out}"]
    if creds:
        argv[2:2] = ["--src-creds", creds]
    return timed(argv, {**os.environ, "HOME": str(home)})


def curl_upload(url: str, path: Path, digest: str, repo: str, token: str | None) -> float:
    """POST to open an upload, then one streamed PUT of the whole blob with curl (both timed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
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
    return timed(argv, dict(os.environ))


def wrk_manifest(url: str, repo: str, token: str | None, seconds: int, work: Path) -> float:
    script = work / f"wrk-{time.monotonic_ns()}.lua"
    lines = ['wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    script.write_text("\n".join(lines) + "\n")
    # Warm up (connections, caches), then measure.
    subprocess.run(["wrk", "-t2", "-c32", "-d2s", "-s", str(script), f"{url}/v2/{repo}/manifests/bench"],
                   capture_output=True, text=True)
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(script),
                          f"{url}/v2/{repo}/manifests/bench"], capture_output=True, text=True).stdout
    non_2xx = [line for line in out.splitlines() if "Non-2xx" in line]
    if non_2xx:
        raise RuntimeError(f"wrk saw errors: {non_2xx}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="image size for push/pull (MiB)")
    parser.add_argument("--big-mib", type=int, default=1024, help="image size for the RSS measurement (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    args = parser.parse_args()

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
    try:
        for name, target, creds in (("hub", hub.host, f"{USER}:{PASSWORD}"), ("reference", reference.host, None)):
            url = f"http://{target}"
            pushes, pulls, uploads, gets = [], [], [], []
            for run in range(args.runs):
                repo = f"{USER}/push{run}-{time.monotonic_ns()}"
                pushes.append(skopeo_push(target, image.ref, repo, creds, home))
                pulls.append(skopeo_pull(target, repo, creds, home, work / "pulled"))
                raw_repo = f"{USER}/raw{run}-{time.monotonic_ns()}"
                token = hub.token(f"repository:{raw_repo}:pull,push") if name == "hub" else None
                uploads.append(curl_upload(url, layer_path, layer_digest, raw_repo, token))
                gets.append(curl_get(url, layer_digest, raw_repo, token))
                print(f"  {name} run {run + 1}: push {pushes[-1]:.2f}s pull {pulls[-1]:.2f}s "
                      f"upload {uploads[-1]:.2f}s get {gets[-1]:.2f}s", flush=True)
            token = hub.token(f"repository:{repo}:pull") if name == "hub" else None
            results[name] = {
                "skopeo push (s)": statistics.median(pushes),
                "skopeo pull (s)": statistics.median(pulls),
                "blob upload, curl (s)": statistics.median(uploads),
                "blob GET, curl (s)": statistics.median(gets),
                "manifest GET (req/s)": wrk_manifest(url, repo, token, args.wrk_seconds, work),
            }
        print(f"building a {args.big_mib} MiB image for the memory measurement …", flush=True)
        big = build_large_image(work / "big", args.big_mib, tag="bench")
        peak = peak_rss_during(hub, lambda: skopeo_push(hub.host, big.ref, f"{USER}/big{time.monotonic_ns()}",
                                                          f"{USER}:{PASSWORD}", home))
    finally:
        hub.stop()
        reference.stop()

    print()
    print(f"| measurement ({args.mib} MiB) | Wharf | reference | Wharf/reference | target |")
    print("|---|---|---|---|---|")
    targets = {"skopeo push (s)": ("≤ 1.0×", lambda r: r <= 1.0), "skopeo pull (s)": ("—", None),
               "blob upload, curl (s)": ("—", None), "blob GET, curl (s)": ("≤ 1.2×", lambda r: r <= 1.2),
               "manifest GET (req/s)": ("≥ 1.0×", lambda r: r >= 1.0)}
    for key, (target, check) in targets.items():
        ours, theirs = results["hub"][key], results["reference"][key]
        ratio = ours / theirs if theirs else float("nan")
        verdict = "" if check is None else (" met" if check(ratio) else " NOT met")
        print(f"| {key} | {ours:.2f} | {theirs:.2f} | {ratio:.2f}× | {target}{verdict} |")
    verdict = "met" if peak < 150 else "NOT met"
    print(f"| peak RSS per gunicorn worker, {args.big_mib} MiB push | {peak:.0f} MiB | | | < 150 MiB {verdict} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
