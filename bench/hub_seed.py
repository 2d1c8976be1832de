"""The seeded database of bench/hub.py: created fresh, filled in bulk (COPY on PostgreSQL,
executemany on SQLite), with Docker Hub's skew.

- Accounts: users and organizations (one in ten), each with its namespace.
- Repositories: official images in `library`; the rest spread over the namespaces by a Zipf-like
  weight (a few namespaces hold thousands of repositories, most hold one or none); some private.
- Pulls: about half the daily pull rows go to the most popular repositories (a full year each, plus
  90 days of their newest tag, as registry/pulls.py stores them: a row per repository and day with
  an empty tag, and a row per tag and day), the rest to less popular ones (50 days each).
- Stars: rows in the star table from random users, heavy-tailed per repository (`star_count` is
  their number); tags and manifests: heavy-tailed per repository that is pulled.

On PostgreSQL the secondary indexes of the big tables are dropped before COPY and built again after
it (as a restore does), then VACUUM ANALYZE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DB = "wharf_bench"
USER, PASSWORD = "benchuser", "bench-password-123"
RARE_WORD = "quokka"
BIG_TABLES = ["accounts_user", "accounts_namespace", "accounts_organization", "repositories_repository",
              "repositories_pullstat", "repositories_star", "registry_manifest", "registry_tag"]
MAX_STARS, MAX_TAGS = 2000, 60


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
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


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
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database]).fetchone()
        if not (args.reuse and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {args.database}")
    return urlunsplit(parts._replace(path=f"/{args.database}")), maintenance


def drop_database(maintenance: str | None, name: str) -> None:
    if maintenance:
        import psycopg

        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bulk_insert(table: str, columns: list[str], rows) -> int:
    """COPY on PostgreSQL (psycopg's `cursor.copy()`), executemany on SQLite; `rows` may be a generator."""
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


def model_rows(model, values: dict, rows) -> int:
    """Insert rows of `model` given as dicts of some fields; every other concrete field (but the
    primary key) takes its default, as `Model()` would give it."""
    from django.db import connection

    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    defaults = model()
    columns = [field.column for field in fields]

    def prepared(row: dict):
        out = []
        for field in fields:
            value = row[field.attname] if field.attname in row else values.get(field.attname,
                                                                                getattr(defaults, field.attname))
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            elif not isinstance(value, (str, int, bool, dt.date, bytes)) and value is not None:
                value = field.get_db_prep_save(value, connection)
            out.append(value)
        return out

    return bulk_insert(model._meta.db_table, columns, (prepared(row) for row in rows))


def secondary_indexes(tables: list[str]) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of `tables` that back no constraint (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN "
                       "(SELECT conname FROM pg_constraint)", [tables])
        return cursor.fetchall()


def database_size() -> list[str]:
    """Lines about the database's size: the total and the biggest tables and indexes (PostgreSQL)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        lines = [f"Database size (pg_database_size): {cursor.fetchone()[0]}.", "",
                 "| relation | kind | size | rows (estimate) |", "|---|---|---:|---:|"]
        cursor.execute("SELECT c.relname, c.relkind, pg_size_pretty(pg_relation_size(c.oid)), c.reltuples::bigint "
                       "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') "
                       "ORDER BY pg_relation_size(c.oid) DESC LIMIT 16")
        for name, kind, size, rows in cursor.fetchall():
            lines.append(f"| {name} | {'table' if kind == 'r' else 'index'} | {size} | {max(rows, 0):,} |")
    return lines


# --- seeding --------------------------------------------------------------------------------------


@dataclass
class Seeded:
    user_repo: str  # ns/name of a popular personal repository (with tags and a README)
    official: str  # name of a popular official image
    big_namespace: str  # the organization the bench user belongs to
    biggest_namespace: str  # the user with the most repositories (thousands at full scale)
    exact: str  # a name many repositories contain and one official image has exactly
    common: str  # a substring many repositories contain
    repositories: int
    pull_rows: int
    accounts: int


def daily_counts(index: int, days: int, rate: float) -> list[int]:
    rng = random.Random(index)
    return [max(1, int(rng.expovariate(1 / rate))) for _ in range(days)]


def _repository_name(rng: random.Random, used: set[str]) -> str:
    name = ""
    while not name or name in used:
        picked = rng.sample(WORDS, 3)
        shape = rng.random()
        name = (picked[0] if shape < 0.15 else f"{picked[0]}-{picked[1]}" if shape < 0.75
                else f"{picked[0]}-{picked[1]}-{picked[2]}" if shape < 0.9 else f"{picked[0]}{rng.randint(2, 999)}")
    used.add(name)
    return name


def _seed_accounts(rng: random.Random, n_accounts: int, now: dt.datetime) -> tuple[list[int], list[int]]:
    """Users and organizations with their namespaces; returns (user ids, namespace ids) but the bench's own."""
    from accounts.models import Namespace, Organization, User

    n_orgs = max(2, n_accounts // 10)
    n_users = n_accounts - n_orgs
    model_rows(User, {"password": "!", "date_joined": now},
               ({"username": f"{rng.choice(FIRST)}{i}", "email": f"u{i}@example.com"} for i in range(n_users)))
    model_rows(Organization, {"created_at": now},
               ({"name": f"{rng.choice(WORDS)[:12]}{rng.choice(ORG_SUFFIX)}{i}"} for i in range(n_orgs)))
    users = list(User.objects.exclude(username=USER).order_by("pk").values_list("pk", "username"))
    orgs = list(Organization.objects.order_by("pk").values_list("pk", "name"))
    model_rows(Namespace, {"created_at": now, "kind": Namespace.Kind.USER},
               ({"name": name, "user_id": pk} for pk, name in users))
    model_rows(Namespace, {"created_at": now, "kind": Namespace.Kind.ORGANIZATION},
               ({"name": name, "organization_id": pk} for pk, name in orgs))
    namespaces = list(Namespace.objects.exclude(name__in=["library", USER]).order_by("pk")
                      .values_list("pk", flat=True))
    rng.shuffle(namespaces)  # the biggest namespaces: users and organizations alike
    return [pk for pk, _ in users], namespaces


def seed(args) -> Seeded:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Membership, Namespace, Team, User
    from accounts.services import organization_create
    from registry.models import Manifest, Tag
    from repositories.models import Collaborator, Repository, Star, TeamPermission

    rng = random.Random(42)
    now = timezone.now()
    today = now.date()
    n_repos, n_accounts = args.repos, args.accounts
    postgresql = connection.vendor == "postgresql"
    started = time.perf_counter()
    dropped = secondary_indexes(BIG_TABLES) if postgresql else []
    with connection.cursor() as cursor:
        for name, _ in dropped:
            cursor.execute(f'DROP INDEX "{name}"')
    with transaction.atomic():
        bench_user = User.objects.create_user(USER, f"{USER}@example.com", PASSWORD)
        user_ids, namespaces = _seed_accounts(rng, n_accounts - 1, now)
        benchorg = organization_create(name="benchorg", owner=User.objects.get(pk=user_ids[0]))
        devs = Team.objects.create(organization=benchorg, name="devs")
        Membership.objects.create(team=devs, user=bench_user)
        accounts_seeded = time.perf_counter()

        library = Namespace.objects.get(name="library")
        weights = [1 / (rank + 1) ** 0.7 for rank in range(len(namespaces))]
        official_count = min(150, max(1, n_repos // 100))
        owners = [(Namespace.objects.get(name=USER).pk, 40), (benchorg.namespace.pk, 300)]
        plan: list[tuple[int, str]] = [(library.pk, name) for name in WORDS[:official_count]]
        for namespace_id, count in owners:
            plan += [(namespace_id, "")] * count
        rest = n_repos - len(plan)
        plan += [(namespaces[index], "") for index in rng.choices(range(len(namespaces)), weights=weights, k=rest)]
        rng.shuffle(plan)

        # Pull rows: about half to the most popular repositories (a year of totals and 90 days of their
        # newest tag each), the rest 50 days each. A repository's popularity falls with its index.
        full_year = max(1, args.pulls // 2 // (365 + 90))
        partial = max(0, (args.pulls - full_year * (365 + 90)) // 50)
        rows, taken, rare_left = [], {}, 5
        for index, (namespace_id, name) in enumerate(plan):
            official = namespace_id == library.pk
            used = taken.setdefault(namespace_id, set())
            name = name or _repository_name(rng, used)
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
            stars = min(MAX_STARS, len(user_ids), int(rng.paretovariate(1.3 if official else 1.6)
                                                      * (300 if official else 1)) - (0 if official else 1))
            tags = min(MAX_TAGS, int(rng.paretovariate(1.5))) if days or official else 0
            pushed = now - dt.timedelta(days=rng.random() * 720) if rng.random() > 0.1 else None
            created = (pushed or now) - dt.timedelta(days=rng.random() * 1000)
            private = not official and rng.random() < 0.1
            rows.append((namespace_id, name, private, description, created, pushed, pulls, stars, tags, days,
                         popularity))
        del taken
        columns = ["namespace_id", "name", "is_private", "description", "full_description", "is_automated",
                   "created_at", "updated_at", "last_pushed_at", "last_pulled_at", "pull_count", "star_count",
                   "source_url"]
        bulk_insert("repositories_repository", columns,
                    ((ns, name, private, description, "", False, created, created, pushed, None, pulls, stars, "")
                     for ns, name, private, description, created, pushed, pulls, stars, *_ in rows))
        ids = {(ns, name): pk
               for pk, ns, name in Repository.objects.order_by().values_list("pk", "namespace_id", "name")}
        repositories_seeded = time.perf_counter()

        def manifests():
            for ns, name, _, _, _, pushed, _, _, tags, _, _ in rows:
                for number in range(tags):
                    content = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "n": number,
                                          "repository": ids[(ns, name)]}).encode()
                    yield {"repository_id": ids[(ns, name)], "media_type": OCI_MANIFEST, "content": content,
                           "digest": f"sha256:{hashlib.sha256(content).hexdigest()}", "size": len(content),
                           "total_size": 30_000_000 + number, "created_at": (pushed or now) - dt.timedelta(days=number),
                           "platforms": [{"os": "linux", "architecture": "amd64", "variant": "", "size": 30_000_000}]}

        model_rows(Manifest, {}, manifests())
        # Read whole before COPY starts: nothing else can run on the connection while COPY does.
        listed = list(Manifest.objects.order_by("repository_id", "-created_at").values_list(
            "pk", "repository_id", "created_at"))

        def tags():
            for repository_id, manifests_of in itertools.groupby(listed, key=lambda row: row[1]):
                for number, (pk, _, created) in enumerate(manifests_of):
                    yield {"repository_id": repository_id, "manifest_id": pk, "name": f"1.{number}",
                           "pushed_at": created}

        model_rows(Tag, {}, tags())

        def stars():
            population = range(len(user_ids))
            for ns, name, *_rest in rows:
                count = _rest[5]
                if count > 0:
                    pk = ids[(ns, name)]
                    for user_index in rng.sample(population, count):
                        yield {"repository_id": pk, "user_id": user_ids[user_index]}

        star_rows = model_rows(Star, {"created_at": now}, stars())

        def pull_rows():
            for index, (ns, name, *_rest, tags, days, popularity) in enumerate(rows):
                if days:
                    pk = ids[(ns, name)]
                    counts = daily_counts(index, days, popularity)
                    for back, count in enumerate(counts):
                        yield pk, "", today - dt.timedelta(days=back), count
                    if days == 365 and tags:
                        for back, count in enumerate(counts[:90]):
                            yield pk, "1.0", today - dt.timedelta(days=back), max(1, count // 2)

        pull_count = bulk_insert("repositories_pullstat", ["repository_id", "tag", "day", "count"], pull_rows())
        rows_seeded = time.perf_counter()

        # The bench user's own world: collaborations, a team grant, stars.
        private_others = list(Repository.objects.filter(is_private=True, namespace__kind=Namespace.Kind.USER)
                              .exclude(namespace__name=USER).order_by("pk")[:20])
        Collaborator.objects.bulk_create([Collaborator(repository=r, user=bench_user) for r in private_others])
        org_private = list(Repository.objects.filter(namespace=benchorg.namespace).order_by("pk")[:10])
        Repository.objects.filter(pk__in=[r.pk for r in org_private]).update(is_private=True)
        TeamPermission.objects.bulk_create([TeamPermission(repository=r, team=devs) for r in org_private])
        Star.objects.bulk_create([Star(repository_id=pk, user=bench_user)
                                  for pk in rng.sample(sorted(ids.values()), 25)], ignore_conflicts=True)

        popular = (Repository.objects.filter(is_private=False, namespace__kind=Namespace.Kind.USER)
                   .select_related("namespace").order_by("-pull_count").first())
        official = Repository.objects.filter(namespace=library).order_by("-pull_count").first()
        for repository in (popular, official):
            repository.full_description = README.replace("{name}", repository.name)
            repository.save(update_fields=["full_description"])
        Tag.objects.filter(repository=popular).delete()
        Manifest.objects.filter(repository=popular).delete()
        for i in range(30):
            digest = f"sha256:{i:064x}"
            platforms = [{"os": "linux", "architecture": arch, "variant": "", "digest": digest,
                          "size": 30_000_000 + i} for arch in ("amd64", "arm64")]
            manifest = Manifest.objects.create(
                repository=popular, digest=digest, media_type=OCI_MANIFEST,
                content=b"{}", size=2, platforms=platforms, total_size=30_000_000 + i, pushed_by=popular.created_by)
            Tag.objects.create(repository=popular, name=f"1.{i}", manifest=manifest,
                               pushed_at=now - dt.timedelta(days=i))
    indexes_started = time.perf_counter()
    with connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in dropped:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE" if postgresql else "ANALYZE")
    done = time.perf_counter()
    print(f"Seeded {len(rows):,} repositories, {n_accounts:,} accounts (users and organizations), "
          f"{pull_count:,} pull rows, {star_rows:,} stars and {Tag.objects.count():,} tags in "
          f"{done - started:.1f} s on {connection.vendor} (accounts {accounts_seeded - started:.1f} s, "
          f"repositories {repositories_seeded - accounts_seeded:.1f} s, manifests, tags, stars and pull rows "
          f"{rows_seeded - repositories_seeded:.1f} s, {len(dropped)} secondary indexes rebuilt and VACUUM ANALYZE "
          f"{done - indexes_started:.1f} s).\n")
    return describe()


def describe() -> Seeded:
    """What the endpoints need from a seeded database (also for --reuse)."""
    from django.db.models import Count

    from accounts.models import Namespace
    from repositories.models import PullStat, Repository

    popular = (Repository.objects.filter(is_private=False, namespace__kind=Namespace.Kind.USER)
               .exclude(full_description="").select_related("namespace").order_by("-pull_count").first())
    official = Repository.objects.filter(namespace__name="library").exclude(full_description="").first()
    biggest = (Repository.objects.filter(namespace__kind=Namespace.Kind.USER).order_by().values("namespace_id")
               .annotate(repositories=Count("pk")).order_by("-repositories").first())
    return Seeded(user_repo=popular.full_name, official=official.name, big_namespace="benchorg",
                  biggest_namespace=Namespace.objects.get(pk=biggest["namespace_id"]).name,
                  exact=official.name, common="web", repositories=Repository.objects.count(),
                  pull_rows=PullStat.objects.count(), accounts=Namespace.objects.count() - 1)
