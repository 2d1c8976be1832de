#!/usr/bin/env python
"""Hub benchmark: search, repository pages and the Hub API over a large seeded database.

Creates a fresh database (PostgreSQL `wharf_bench` on the server of BENCH_POSTGRES_URL or
HUB_TEST_POSTGRES_URL, else a SQLite file), migrates it, seeds it in bulk (COPY on PostgreSQL,
bench/hub_seed.py): by default 100,000 repositories across 5,000 users and organizations
(official images in `library`, some private, stars, tags and pulls) and 1,000,000 daily pull
rows over the last 365 days; the scale is set with --repos, --accounts and --pull-rows. It prints
the seed time and, on PostgreSQL, the database's size and its biggest tables and indexes. Then it
starts
gunicorn on loopback and measures p50/p95 latency with a bounded number of requests per endpoint
from a few concurrent clients (in rounds over every endpoint: the host's speed varies, and a row's
figure is the median of its rounds), then from one client alone, anonymous and signed in (session
cookie for pages, a JWT from POST /v2/users/login for the API). It also counts the SQL queries each
request makes and runs EXPLAIN ANALYZE on the search query to show whether the trigram indexes are
used. One row is the registry's manifest GET (anonymous, with a pull token from /token): compare it
between a big and a small database to see that table sizes do not reach it.
Not a test: it asserts nothing and only prints figures.

    bash tests/services.sh .venv/bin/python bench/hub.py
    .venv/bin/python bench/hub.py --sqlite --repos 10000
    bash tests/services.sh .venv/bin/python bench/hub.py --repos 1000000 --accounts 100000 --pull-rows 10000000

While iterating, seed once with --keep on a PostgreSQL server that outlives the run
(BENCH_POSTGRES_URL), then `--reuse --keep --only search` measures some rows on that database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.hub_seed import (  # noqa: E402
    BENCH_DB,
    PASSWORD,
    RARE_WORD,
    USER,
    Seeded,
    create_database,
    database_size,
    describe,
    drop_database,
    seed,
)
from tests.live import free_port, wait_until  # noqa: E402

PY = Path(sys.executable)
TARGET_MS = 100.0


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    label: str
    path: str
    kind: str  # page | api | registry (anonymous, with a pull token)


def endpoints(seeded: Seeded) -> list[Endpoint]:
    repo = seeded.user_repo
    return [
        Endpoint(f"search `{seeded.exact}` (exact name)", f"/search?q={seeded.exact}", "page"),
        Endpoint(f"search `{seeded.common}` (common)", f"/search?q={seeded.common}", "page"),
        Endpoint(f"search `{RARE_WORD}` (rare word)", f"/search?q={RARE_WORD}", "page"),
        Endpoint("search, no words", "/search?q=", "page"),
        Endpoint(f"search `{seeded.common}`, page 3, most pulls", f"/search?q={seeded.common}&sort=pulls&page=3",
                 "page"),
        Endpoint("repository page", f"/r/{repo}", "page"),
        Endpoint("repository tags", f"/r/{repo}/tags", "page"),
        Endpoint("repository statistics (365 days)", f"/r/{repo}/stats?days=365", "page"),
        Endpoint("official image page", f"/_/{seeded.official}", "page"),
        Endpoint("explore", "/explore", "page"),
        Endpoint("home (signed in: the dashboard)", "/", "page"),
        Endpoint(f"profile of `{seeded.biggest_namespace}` (the most repositories)", f"/u/{seeded.biggest_namespace}",
                 "page"),
        Endpoint(f"API list `{seeded.big_namespace}`", f"/v2/repositories/{seeded.big_namespace}/", "api"),
        Endpoint(f"API list `{seeded.big_namespace}`, 100 per page",
                 f"/v2/repositories/{seeded.big_namespace}/?page_size=100", "api"),
        Endpoint(f"API list `{seeded.biggest_namespace}` (the most repositories)",
                 f"/v2/repositories/{seeded.biggest_namespace}/", "api"),
        Endpoint("API repository", f"/v2/repositories/{repo}/", "api"),
        Endpoint("API stats (365 days)", f"/v2/repositories/{repo}/stats/?days=365", "api"),
        Endpoint(f"API search `{seeded.common}`", f"/v2/search/repositories/?query={seeded.common}", "api"),
        Endpoint(f"API search `{seeded.exact}`", f"/v2/search/repositories/?query={seeded.exact}", "api"),
        Endpoint("registry manifest GET", f"/v2/{repo}/manifests/1.0", "registry"),
    ]


def pull_token(base: str, path: str) -> str:
    """An anonymous pull token for the repository of a registry path, from the realm its 401 names."""
    challenge = requests.get(base + path, timeout=30).headers["WWW-Authenticate"]
    params = dict(part.split("=", 1) for part in challenge.split(" ", 1)[1].split(","))
    params = {key: value.strip('"') for key, value in params.items()}
    response = requests.get(params["realm"], params={"service": params["service"], "scope": params["scope"]},
                            timeout=30)
    response.raise_for_status()
    return response.json()["token"]


def machine_speed() -> float:
    """Milliseconds of CPU a fixed pure-Python loop takes: how fast the (shared) host is right now."""
    started = time.process_time()
    total = 0
    for number in range(1_000_000):
        total += number * number % 7
    return (time.process_time() - started) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(url: str, headers: dict, cookies: dict, requests_count: int, clients: int) -> tuple[list[float], int]:
    timings: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(count: int) -> None:
        session = requests.Session()
        session.headers.update(headers)
        session.cookies.update(cookies)
        for _ in range(count):
            started = time.perf_counter()
            response = session.get(url, timeout=30, allow_redirects=False)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                timings.append(elapsed)
                if response.status_code != 200:
                    errors[0] += 1

    warm = requests.Session()
    warm.headers.update(headers)
    warm.cookies.update(cookies)
    for _ in range(5):
        warm.get(url, timeout=30)
    threads = [threading.Thread(target=client, args=(requests_count // clients,)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors[0]


def in_process(path: str, kind: str, signed_in: bool, jwt: str) -> tuple[int, float]:
    """The SQL statements one request makes, and its median time through Django alone (no HTTP,
    no concurrency): the work a request costs, apart from waiting for a CPU."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    client = Client()
    extra = {}
    if kind == "registry":
        extra["HTTP_AUTHORIZATION"] = f"Bearer {jwt}"
        extra["HTTP_ACCEPT"] = "application/vnd.oci.image.manifest.v1+json"
    elif signed_in and kind == "page":
        client.force_login(User.objects.get(username=USER))
    elif signed_in:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {jwt}"
    client.get(path, **extra)  # warm caches (signing key, site settings)
    with CaptureQueriesContext(connection) as queries:
        client.get(path, **extra)
    count = len(queries)  # now: the next request resets the connection's query log
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        client.get(path, **extra)
        timings.append((time.perf_counter() - started) * 1000)
    return count, statistics.median(timings)


def explain_search(seeded: Seeded) -> None:
    """EXPLAIN ANALYZE (EXPLAIN QUERY PLAN on SQLite) of every statement one search makes: the
    namespace lookup, the first page of 25 and the count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from repositories.permissions import Actor
    from repositories.search import capped_count, search_queryset

    postgresql = connection.vendor == "postgresql"
    print(f"\n### {'EXPLAIN ANALYZE' if postgresql else 'EXPLAIN QUERY PLAN'} of the search queries "
          "(namespace lookup, page of 25, count)\n")
    print("| query | who | ms per statement | indexes used |")
    print("|---|---|---|---|")
    user = User.objects.get(username=USER)
    shown = ""
    for term in (seeded.exact, seeded.common, RARE_WORD, ""):
        for who, actor in (("anonymous", Actor()), ("signed in", Actor.for_user(user))):
            with CaptureQueriesContext(connection) as captured:
                queryset = search_queryset(actor=actor, query=term)
                list(queryset[:25])
                capped_count(queryset)  # as the pages count: no further than COUNT_LIMIT + 1
            statements = [query["sql"] for query in captured.captured_queries]
            plans, times = [], []
            with connection.cursor() as cursor:
                for sql in statements:
                    started = time.perf_counter()
                    cursor.execute(("EXPLAIN ANALYZE " if postgresql else "") + sql)
                    rows = cursor.fetchall()
                    elapsed = (time.perf_counter() - started) * 1000
                    if postgresql:
                        plans.append("\n".join(row[0] for row in rows))
                        times.append(_plan_ms(plans[-1]))
                    else:
                        cursor.execute("EXPLAIN QUERY PLAN " + sql)
                        plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))
                        times.append(elapsed)
            text = "\n".join(plans)
            used = sorted({word.strip('"(),') for word in text.split()
                           if word.strip('"(),').endswith(("_trgm", "_idx", "_pulls", "_pkey", "_key"))
                           or word.startswith("repositories_repository_")})
            print(f"| `{term}` | {who} | {' + '.join(f'{ms:.1f}' for ms in times)} | "
                  f"{', '.join(used) or 'none (scans)'} |")
            if term == seeded.common and who == "signed in":
                shown = "\n\n".join(plans)
    print(f"\nPlans of `{seeded.common}`, signed in:\n\n```\n{shown}\n```")


def _plan_ms(plan: str) -> float:
    for line in plan.splitlines():
        if line.strip().startswith("Execution Time:"):
            return float(line.split(":")[1].split()[0])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=None,
                        help="users and organizations, one in ten an organization (default: 1 per 20 repositories)")
    parser.add_argument("--pull-rows", "--pulls", dest="pulls", type=int, default=None,
                        help="daily pull rows (default: 10 per repository)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint and persona")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over every row under load; a row's p50 and p95 are the medians of its rounds")
    parser.add_argument("--single", type=int, default=50, help="timed requests per row from one client alone")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL is available")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and the bench database")
    parser.add_argument("--only", default="", help="measure only the endpoints whose label contains this text")
    parser.add_argument("--database", default=BENCH_DB,
                        help=f"the PostgreSQL database to create (and drop, without --keep); default {BENCH_DB}")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a seeded PostgreSQL bench database (kept by an earlier --keep run)")
    args = parser.parse_args()
    args.pulls = args.pulls if args.pulls is not None else args.repos * 10
    args.accounts = args.accounts if args.accounts is not None else max(50, args.repos // 20)

    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-"))
    database_url, maintenance = create_database(args, tmp)
    port = free_port()
    env = {"DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp / "data"), "PORT": str(port),
           "HUB_PUBLIC_URL": f"http://127.0.0.1:{port}", "DJANGO_SETTINGS_MODULE": "hub.settings",
           "HUB_ACCESS_LOG": "", "HUB_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    process = None
    try:
        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        from accounts.models import User

        seeded = describe() if args.reuse and User.objects.filter(username=USER).exists() else seed(args)
        from django.db import connections

        connections.close_all()
        log = open(tmp / "gunicorn.log", "wb")  # noqa: SIM115 - handed to the child process
        process = subprocess.Popen([str(PY.parent / "gunicorn"), "--config", "gunicorn.conf.py"], cwd=REPO_ROOT,
                                   env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, timeout=60, message="gunicorn")
        login = requests.post(f"{base}/v2/users/login", json={"username": USER, "password": PASSWORD}, timeout=30)
        login.raise_for_status()
        jwt = login.json()["token"]
        from django.conf import settings
        from django.test import Client

        session_client = Client()
        session_client.force_login(User.objects.get(username=USER))
        session_cookie = {settings.SESSION_COOKIE_NAME: session_client.cookies[settings.SESSION_COOKIE_NAME].value}

        from django.db import connection

        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        print(f"## Hub benchmark: {seeded.repositories:,} repositories, {seeded.accounts:,} users and "
              f"organizations, {seeded.pull_rows:,} pull rows, {connection.vendor}\n")
        print("\n".join(database_size()) + "\n")
        print(f"gunicorn: {len(workers)} workers × {os.environ.get('HUB_WEB_THREADS') or 8} threads on "
              f"{os.cpu_count()} CPUs. Under load: {args.rounds} rounds of {args.requests} timed requests per row "
              f"from {args.clients} concurrent clients (on the same CPUs), each after 5 warm-up requests; p50 and "
              f"p95 are the medians of the rounds'. 1 client: {args.single} requests from one client, nothing else "
              f"running. Alone = median of 5 requests through Django in this process (no HTTP); queries = SQL "
              f"statements one request makes. Load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
        rows = [(endpoint, who) for endpoint in endpoints(seeded) if args.only in endpoint.label
                for who in (("anonymous",) if endpoint.kind == "registry" else ("anonymous", "signed in"))]

        def credentials(endpoint: Endpoint, who: str) -> tuple[dict, dict]:
            if endpoint.kind == "registry":  # a fresh token each time: the rounds outlast one
                return {"Authorization": f"Bearer {pull_token(base, endpoint.path)}",
                        "Accept": "application/vnd.oci.image.manifest.v1+json"}, {}
            signed_in = who == "signed in"
            headers = {"Authorization": f"Bearer {jwt}"} if signed_in and endpoint.kind == "api" else {}
            return headers, session_cookie if signed_in and endpoint.kind == "page" else {}

        # Rounds go over every row in turn, so a slow spell of the host lands on one round of many
        # rows rather than on every round of one row; each row's figure is the median of its rounds.
        loaded: dict[int, list[tuple[float, float]]] = {index: [] for index in range(len(rows))}
        errors = dict.fromkeys(range(len(rows)), 0)
        speeds = [machine_speed()]
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} of {args.rounds}…", file=sys.stderr, flush=True)
            for index, (endpoint, who) in enumerate(rows):
                timings, failed = measure(base + endpoint.path, *credentials(endpoint, who), args.requests,
                                          args.clients)
                loaded[index].append((statistics.median(timings), percentile(timings, 0.95)))
                errors[index] += failed
            speeds.append(machine_speed())
        print(f"| endpoint | who | p50 (ms) | p95 (ms) | slowest round's p95 | 1 client p50 / p95 | alone (ms) | "
              f"queries | errors | p95 < {TARGET_MS:.0f} ms |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        missed = 0
        for index, (endpoint, who) in enumerate(rows):
            single, failed = measure(base + endpoint.path, *credentials(endpoint, who), args.single, 1)
            errors[index] += failed
            token = pull_token(base, endpoint.path) if endpoint.kind == "registry" else jwt
            queries, alone = in_process(endpoint.path, endpoint.kind, who == "signed in", token)
            p50 = statistics.median(p50 for p50, _ in loaded[index])
            p95 = statistics.median(p95 for _, p95 in loaded[index])
            met = p95 < TARGET_MS and not errors[index]
            missed += not met
            print(f"| {endpoint.label} | {who} | {p50:.1f} | {p95:.1f} | {max(p95 for _, p95 in loaded[index]):.1f} | "
                  f"{statistics.median(single):.1f} / {percentile(single, 0.95):.1f} | {alone:.1f} | {queries} | "
                  f"{errors[index]} | {'yes' if met else '**no**'} |", flush=True)
        print(f"\nThe host's speed: a fixed pure-Python loop took {min(speeds):.0f}–{max(speeds):.0f} ms of CPU "
              f"(before and after each round): the wider that spread, the noisier the figures above.")
        print(f"\nLoad average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}.")
        print(f"\n{'Every row meets' if not missed else f'{missed} rows miss'} the {TARGET_MS:.0f} ms p95 target.")
        if not args.only:
            explain_search(seeded)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"\nKept {tmp}" + (f" and database {args.database}" if maintenance else ""))
        else:
            drop_database(maintenance, args.database)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
