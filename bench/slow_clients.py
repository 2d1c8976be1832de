#!/usr/bin/env python
"""Slow-client benchmark: how Wharf's gunicorn answers while many clients trickle their requests.

For each worker (HUB_WEB_WORKER gthread, the old default, and gevent, lib/slow_clients.py) it starts
Wharf with the embedded defaults and 3 workers, opens --clients connections that send one byte every
half second (40 % endless headers, 40 % endless `POST /token` bodies with Content-Length 100000,
20 % endless blob upload PATCHes), then times 20 `/healthz` requests and 20 token requests one after
another (10 s timeout each) and reads the workers' RSS. Prints a table; asserts nothing.

    .venv/bin/python bench/slow_clients.py [--clients 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.registry import PASSWORD, USER, Hub, rss_mib  # noqa: E402


class Tricklers:
    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def open(self, port: int, first: bytes) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(first)
        self.socks.append(sock)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for sock in self.socks:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def timed_requests(url: str, count: int, **kwargs) -> tuple[list[float], int]:
    times, failures = [], 0
    for _ in range(count):
        started = time.monotonic()
        try:
            ok = requests.get(url, timeout=5, **kwargs).status_code == 200
        except requests.RequestException:
            ok = False
        times.append(time.monotonic() - started)
        failures += not ok
    return times, failures


def measure(worker: str, clients: int) -> dict[str, str]:
    os.environ["BENCH_HUB_WEB_WORKER"] = worker
    hub = Hub(Path(tempfile.mkdtemp(prefix=f"wharf-slow-{worker}-")))
    tricklers = Tricklers()
    try:
        repo = f"{USER}/slow"
        token = hub.token(f"repository:{repo}:pull,push")
        auth = f"Authorization: Bearer {token}\r\n"
        uploads = []
        for _ in range(clients // 5):
            response = requests.post(f"{hub.url}/v2/{repo}/blobs/uploads/", timeout=10,
                                     headers={"Authorization": f"Bearer {token}"})
            uploads.append(response.headers["Location"])
        for i in range(clients):
            if i < clients * 2 // 5:
                head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            elif i < clients * 4 // 5:
                head = ("POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        "Content-Length: 100000\r\n\r\n")
            else:
                head = (f"PATCH {uploads.pop()} HTTP/1.1\r\nHost: x\r\n{auth}"
                        f"Content-Type: application/octet-stream\r\nContent-Length: {10 << 20}\r\n\r\n")
            tricklers.open(hub.port, head.encode())
        tricklers.thread.start()
        time.sleep(3)
        health, health_failures = timed_requests(f"{hub.url}/healthz", 10)
        tokens, token_failures = timed_requests(f"{hub.url}/token", 10, auth=(USER, PASSWORD),
                                                params={"service": hub.host, "scope": f"repository:{repo}:pull"})
        rss = [rss_mib(pid) for pid in hub.worker_pids()]
    finally:
        tricklers.close()
        hub.stop()
    return {
        "worker": worker,
        "/healthz median (s)": f"{statistics.median(health):.3f}",
        "/healthz failed": f"{health_failures}/10",
        "token median (s)": f"{statistics.median(tokens):.3f}",
        "token failed": f"{token_failures}/10",
        "RSS per worker (MiB)": f"{max(rss):.0f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    rows = [measure(worker, args.clients) for worker in ("gthread", "gevent")]
    print(f"# {args.clients} trickling clients, 3 workers (gthread: 8 threads each)")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


if __name__ == "__main__":
    main()
