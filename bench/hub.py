#!/usr/bin/env python
"""Hub benchmark: search, repository pages and the Hub API over a large seeded database.

Creates a fresh database (PostgreSQL `wharf_bench` on the server of BENCH_POSTGRES_URL or
HUB_TEST_POSTGRES_URL, else a SQLite file), migrates it, seeds it in bulk (COPY on PostgreSQL):
100,000 repositories across ~5,000 users and organizations (official images in `library`, some
private, stars and pulls) and 1,000,000 daily pull rows over the last 365 days. Then it starts
gunicorn on loopback and measures p50/p95 latency with a bounded number of requests per endpoint
from a few concurrent clients (in rounds over every endpoint: the host's speed varies, and a row's
figure is the median of its rounds), then from one client alone, anonymous and signed in (session
cookie for pages, a JWT from POST /v2/users/login for the API). It also counts the SQL queries each
request makes and runs EXPLAIN ANALYZE on the search query to show whether the trigram indexes are
used.
Not a test: it asserts nothing and only prints figures.

    bash tests/services.sh .venv/bin/python bench/hub.py
    .venv/bin/python bench/hub.py --sqlite --repos 10000

While iterating, seed once with --keep on a PostgreSQL server that outlives the run
(BENCH_POSTGRES_URL), then `--reuse --keep --only search` measures some rows on that database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.live import free_port, wait_until  # noqa: E402

PY = Path(sys.executable)
BENCH_DB = "wharf_bench"
USER, PASSWORD = "benchuser", "bench-password-123"
TARGET_MS = 100.0
RARE_WORD = "quokka"


def words(text: str) -> list[str]:
    return text.split()


WORDS = words(
    "nginx redis postgres mysql mariadb mongo alpine ubuntu debian fedora python node golang rust java ruby php "
    "perl httpd traefik caddy haproxy envoy consul vault etcd kafka zookeeper rabbitmq nats memcached "
    "elasticsearch kibana grafana prometheus loki jaeger influxdb telegraf minio registry jenkins gitlab gitea "
    "drone sonarqube nextcloud wordpress ghost drupal joomla odoo airflow spark flink hadoop jupyter tensorflow "
    "pytorch ollama llama whisper stable diffusion web api app service worker proxy cache gateway auth "
    "dashboard exporter operator agent controller scheduler runner builder backup sync mirror bridge relay "
    "monitor logger tracer crawler scraper bot cli sdk tools utils base slim dev test prod edge core lite "
    "server client daemon admin portal store shop blog wiki chat mail search index queue stream pipeline "
    "etl ml ai model inference vision speech data lake warehouse notebook lab studio"
)
ADJECTIVES = words("fast minimal secure tiny hardened official lightweight distroless simple modern")
KINDS = words("image container toolkit runtime server build environment stack")
FIRST = words("alex sam chris jordan taylor morgan casey jamie robin kim lee max nina omar lena ivan yuki ana "
              "paul sara tom mia leo zoe eva noah liam emma")
ORG_SUFFIX = words("labs io hq dev cloud systems tech works corp team")
README = "\n\n".join(
    [f"# {{name}}\n\nA {adj} image. Pull it with `docker pull {{name}}`." for adj in ADJECTIVES[:1]]
    + [f"## {word.title()}\n\n" + " ".join([f"The {word} setting controls how the {word} behaves."] * 6)
       + "\n\n```sh\ndocker run --rm {name} " + word + "\n```" for word in WORDS[:12]]
)


# --- the database ---------------------------------------------------------------------------------


def create_database(args, tmp: Path) -> tuple[str, str | None]:
    """A fresh bench database: (DATABASE_URL, the maintenance URL to drop it with, or None)."""
    server = "" if args.sqlite else (os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("HUB_TEST_POSTGRES_URL"))
    if not server:
        if not args.sqlite:
            print("No BENCH_POSTGRES_URL or HUB_TEST_POSTGRES_URL: using SQLite "
                  "(run under `bash tests/services.sh` for PostgreSQL).\n")
        return f"sqlite:///{tmp / 'bench.sqlite3'}", None
    import psycopg

    parts = urlsplit(server)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not (args.reuse and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}")), maintenance


def drop_database(maintenance: str | None) -> None:
    if maintenance:
        import psycopg

        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def bulk_insert(table: str, columns: list[str], rows) -> int:
    """COPY on PostgreSQL, executemany on SQLite; `rows` may be a generator."""
    from django.db import connection

    count = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    ops = connection.ops

    def adapt(value):
        if isinstance(value, dt.datetime):
            return ops.adapt_datetimefield_value(value)
        if isinstance(value, dt.date):
            return ops.adapt_datefield_value(value)
        return value

    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    batch: list = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append([adapt(value) for value in row])
            if len(batch) >= 5000:
                cursor.executemany(sql, batch)
                count, batch = count + len(batch), []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


# --- seeding --------------------------------------------------------------------------------------


@dataclass
class Seeded:
    user_repo: str  # ns/name of a popular personal repository (with tags and a README)
    official: str  # name of a popular official image
    big_namespace: str  # the organization the bench user belongs to
    exact: str  # a name many repositories contain and one official image has exactly
    common: str  # a substring many repositories contain
    repositories: int
    pull_rows: int


def daily_counts(index: int, days: int, rate: float) -> list[int]:
    rng = random.Random(index)
    return [max(1, int(rng.expovariate(1 / rate))) for _ in range(days)]


def seed(args) -> Seeded:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Membership, Namespace, Organization, Team, User
    from accounts.services import organization_create
    from registry.models import Manifest, Tag
    from repositories.models import Collaborator, Repository, Star, TeamPermission

    rng = random.Random(42)
    now = timezone.now()
    today = now.date()
    n_repos, n_accounts = args.repos, max(50, args.repos // 20)
    n_orgs = n_accounts // 25
    started = time.perf_counter()
    with transaction.atomic():
        bench_user = User.objects.create_user(USER, f"{USER}@example.com", PASSWORD)
        users = [User(username=f"{rng.choice(FIRST)}{i}", email=f"u{i}@example.com", password="!",
                      date_joined=now) for i in range(n_accounts - n_orgs)]
        User.objects.bulk_create(users, batch_size=2000)
        users = list(User.objects.exclude(pk=bench_user.pk).order_by("pk"))
        Namespace.objects.bulk_create([Namespace(name=u.username, kind=Namespace.Kind.USER, user=u) for u in users],
                                      batch_size=2000)
        orgs = Organization.objects.bulk_create(
            [Organization(name=f"{rng.choice(WORDS)}{rng.choice(ORG_SUFFIX)}{i}") for i in range(n_orgs)])
        Namespace.objects.bulk_create([Namespace(name=o.name, kind=Namespace.Kind.ORGANIZATION, organization=o)
                                       for o in orgs], batch_size=2000)
        benchorg = organization_create(name="benchorg", owner=users[0])
        devs = Team.objects.create(organization=benchorg, name="devs")
        Membership.objects.create(team=devs, user=bench_user)

        library = Namespace.objects.get(name="library")
        namespaces = list(Namespace.objects.exclude(pk=library.pk).exclude(name__in=[USER, "benchorg"]))
        weights = [1 / (rank + 1) ** 0.7 for rank in range(len(namespaces))]
        owners = [(library.pk, False, min(150, n_repos // 100))]
        owners += [(Namespace.objects.get(name=USER).pk, True, 40), (benchorg.namespace.pk, True, 300)]
        rest = n_repos - sum(count for _, _, count in owners)
        picked = rng.choices(range(len(namespaces)), weights=weights, k=rest)
        per_namespace: dict[int, int] = {}
        for index in picked:
            per_namespace[namespaces[index].pk] = per_namespace.get(namespaces[index].pk, 0) + 1

        plan: list[tuple[int, bool, str]] = []
        official_names = WORDS[: owners[0][2]]
        plan += [(library.pk, True, name) for name in official_names[: owners[0][2]]]
        for namespace_id, _, count in owners[1:]:
            plan += [(namespace_id, False, "")] * count
        for namespace_id, count in per_namespace.items():
            plan += [(namespace_id, False, "")] * count
        rng.shuffle(plan)

        # Pull rows: about half to the most popular repositories (a full year each), the rest 50 days each.
        full_year = max(1, args.pulls // 2 // 365)
        partial = max(0, (args.pulls - full_year * 365) // 50)
        rows, taken, rare_left = [], {}, 5
        for index, (namespace_id, official, name) in enumerate(plan):
            used = taken.setdefault(namespace_id, set())
            while not name or name in used:
                words = rng.sample(WORDS, 3)
                shape = rng.random()
                name = (words[0] if shape < 0.15 else f"{words[0]}-{words[1]}" if shape < 0.75
                        else f"{words[0]}-{words[1]}-{words[2]}" if shape < 0.9 else f"{words[0]}{rng.randint(2, 99)}")
            used.add(name)
            if rng.random() < 0.12:
                description = ""
            else:
                description = (f"{rng.choice(ADJECTIVES).title()} {rng.choice(WORDS)} {rng.choice(KINDS)} "
                               f"for {rng.choice(WORDS)} and {rng.choice(WORDS)}")[:100]
            if rare_left and index % 997 == 1:
                description, rare_left = f"A {RARE_WORD} {rng.choice(KINDS)} for {name}", rare_left - 1
            days = 365 if official or index < full_year else 50 if index < full_year + partial else 0
            popularity = 5000.0 if official else 200.0 / (1 + index / 500)
            pulls = sum(daily_counts(index, days, popularity)) if days else 0
            pulls += int(rng.paretovariate(1.1) * (10_000 if official else 20))
            stars = int(rng.paretovariate(1.3) * (300 if official else 1)) - (0 if official else 1)
            pushed = now - dt.timedelta(days=rng.random() * 720) if rng.random() > 0.1 else None
            created = (pushed or now) - dt.timedelta(days=rng.random() * 1000)
            private = not official and rng.random() < 0.1
            rows.append((namespace_id, name, private, description, "", False, created, created, pushed, None,
                         pulls, stars, "", index, days, popularity))
        columns = ["namespace_id", "name", "is_private", "description", "full_description", "is_automated",
                   "created_at", "updated_at", "last_pushed_at", "last_pulled_at", "pull_count", "star_count",
                   "source_url"]
        bulk_insert("repositories_repository", columns, (row[:13] for row in rows))
        ids = {(ns, name): pk
               for pk, ns, name in Repository.objects.order_by().values_list("pk", "namespace_id", "name")}

        def pull_rows():
            for row in rows:
                index, days, popularity = row[13:]
                if days:
                    pk = ids[(row[0], row[1])]
                    for back, count in enumerate(daily_counts(index, days, popularity)):
                        yield pk, "", today - dt.timedelta(days=back), count

        pull_count = bulk_insert("repositories_pullstat", ["repository_id", "tag", "day", "count"], pull_rows())

        # The bench user's own world: collaborations, a team grant, stars.
        private_others = list(Repository.objects.filter(is_private=True, namespace__kind=Namespace.Kind.USER)
                              .exclude(namespace__name=USER).order_by("pk")[:20])
        Collaborator.objects.bulk_create([Collaborator(repository=r, user=bench_user) for r in private_others])
        org_private = list(Repository.objects.filter(namespace=benchorg.namespace).order_by("pk")[:10])
        Repository.objects.filter(pk__in=[r.pk for r in org_private]).update(is_private=True)
        TeamPermission.objects.bulk_create([TeamPermission(repository=r, team=devs) for r in org_private])
        Star.objects.bulk_create([Star(repository_id=pk, user=bench_user) for pk in rng.sample(sorted(ids.values()),
                                                                                               25)])

        popular = (Repository.objects.filter(is_private=False, namespace__kind=Namespace.Kind.USER)
                   .select_related("namespace").order_by("-pull_count").first())
        official = Repository.objects.filter(namespace=library).order_by("-pull_count").first()
        for repository in (popular, official):
            repository.full_description = README.replace("{name}", repository.name)
            repository.save(update_fields=["full_description"])
        for i in range(30):
            digest = f"sha256:{i:064x}"
            platforms = [{"os": "linux", "architecture": arch, "variant": "", "digest": digest,
                          "size": 30_000_000 + i} for arch in ("amd64", "arm64")]
            manifest = Manifest.objects.create(
                repository=popular, digest=digest, media_type="application/vnd.oci.image.manifest.v1+json",
                content=b"{}", size=2, platforms=platforms, total_size=30_000_000 + i, pushed_by=popular.created_by)
            Tag.objects.create(repository=popular, name=f"1.{i}", manifest=manifest,
                               pushed_at=now - dt.timedelta(days=i))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(f"Seeded {len(rows):,} repositories, {len(users) + n_orgs + 1:,} namespaces and {pull_count:,} "
          f"pull rows in {time.perf_counter() - started:.1f} s on {connection.vendor}.\n")
    return describe()


def describe() -> Seeded:
    """What the endpoints need from a seeded database (also for --reuse)."""
    from accounts.models import Namespace
    from repositories.models import PullStat, Repository

    popular = (Repository.objects.filter(is_private=False, namespace__kind=Namespace.Kind.USER)
               .exclude(full_description="").select_related("namespace").order_by("-pull_count").first())
    official = Repository.objects.filter(namespace__name="library").exclude(full_description="").first()
    return Seeded(user_repo=popular.full_name, official=official.name, big_namespace="benchorg",
                  exact=official.name, common="web", repositories=Repository.objects.count(),
                  pull_rows=PullStat.objects.count())


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    label: str
    path: str
    kind: str  # page | api


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
        Endpoint(f"API list `{seeded.big_namespace}`", f"/v2/repositories/{seeded.big_namespace}/", "api"),
        Endpoint(f"API list `{seeded.big_namespace}`, 100 per page",
                 f"/v2/repositories/{seeded.big_namespace}/?page_size=100", "api"),
        Endpoint("API repository", f"/v2/repositories/{repo}/", "api"),
        Endpoint("API stats (365 days)", f"/v2/repositories/{repo}/stats/?days=365", "api"),
        Endpoint(f"API search `{seeded.common}`", f"/v2/search/repositories/?query={seeded.common}", "api"),
        Endpoint(f"API search `{seeded.exact}`", f"/v2/search/repositories/?query={seeded.exact}", "api"),
    ]


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
    if signed_in and kind == "page":
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
    from repositories.search import search_queryset

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
                queryset.count()
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
    parser.add_argument("--pulls", type=int, default=None, help="daily pull rows (default: 10 per repository)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint and persona")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over every row under load; a row's p50 and p95 are the medians of its rounds")
    parser.add_argument("--single", type=int, default=50, help="timed requests per row from one client alone")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL is available")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and the bench database")
    parser.add_argument("--only", default="", help="measure only the endpoints whose label contains this text")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a seeded PostgreSQL bench database (kept by an earlier --keep run)")
    args = parser.parse_args()
    args.pulls = args.pulls if args.pulls is not None else args.repos * 10

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
        print(f"## Hub benchmark: {seeded.repositories:,} repositories, {seeded.pull_rows:,} pull rows, "
              f"{connection.vendor}\n")
        print(f"gunicorn: {len(workers)} workers × {os.environ.get('HUB_WEB_THREADS') or 8} threads on "
              f"{os.cpu_count()} CPUs. Under load: {args.rounds} rounds of {args.requests} timed requests per row "
              f"from {args.clients} concurrent clients (on the same CPUs), each after 5 warm-up requests; p50 and "
              f"p95 are the medians of the rounds'. 1 client: {args.single} requests from one client, nothing else "
              f"running. Alone = median of 5 requests through Django in this process (no HTTP); queries = SQL "
              f"statements one request makes. Load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
        rows = [(endpoint, who) for endpoint in endpoints(seeded) if args.only in endpoint.label
                for who in ("anonymous", "signed in")]

        def credentials(endpoint: Endpoint, who: str) -> tuple[dict, dict]:
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
            queries, alone = in_process(endpoint.path, endpoint.kind, who == "signed in", jwt)
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
            print(f"\nKept {tmp}" + (f" and database {BENCH_DB}" if maintenance else ""))
        else:
            drop_database(maintenance)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
