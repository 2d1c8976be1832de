"""Personas, their relationships, and shared fixtures.

Who is who (names are unique per test, so tests can share the live server's database):

- alice owns: her namespace (`alice_namespace`), alice/app (`alice_repo`, public) and alice/secret
  (`alice_private`, private), and an organization (`organization`; with teams and a repository: `org`).
- bob collaborates on alice/app and alice/secret (a collaborator pulls and pushes: write).
- charlie is a stranger: no grant anywhere.
- staff is a site staff user (`is_staff`), with no grant of his own.

The users come bare: a test gets a relationship by asking for its fixture, never by building it again.
`private_cache` is the fresh in-memory cache the folders whose tests count logins opt into.
"""

import uuid

import pytest

from accounts.models import Namespace, Organization
from repositories.models import Collaborator, Repository, TeamPermission
from tests.factories import RepositoryFactory, UserFactory, make_organization, team

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _forget_buffered_pulls():
    """Pulls a test made and did not flush must not be credited to a later test's repository."""
    yield
    from registry.pulls import local_buffer

    with local_buffer.lock:
        local_buffer.counts.clear()


@pytest.fixture(autouse=True)
def _forget_remembered_manifests():
    """A test's rows are rolled back (or flushed) without a committed change to announce it: the manifests
    this process remembered must not answer for a later test's (registry/manifest_cache.py)."""
    from registry.manifest_cache import manifest_cache

    manifest_cache.clear()
    yield
    manifest_cache.clear()


@pytest.fixture(autouse=True)
def _forget_capped_search_counts():
    """A search count one test saw reach the limit is not another test's."""
    yield
    from repositories.search import forget_capped_counts

    forget_capped_counts()


@pytest.fixture
def private_cache(settings):
    """A fresh in-memory cache for one test: rate limits, login throttles and used TOTP codes never leak
    between tests (Redis included). Not autouse here: the cache and live-server tests need the real one;
    a folder opts in with an autouse fixture of its own that asks for this one."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def alice(db):
    """The owner: of alice/app, alice/secret and the organization (each only when asked for)."""
    return UserFactory()


@pytest.fixture
def bob(db):
    """The collaborator: on alice/app and alice/secret (when asked for)."""
    return UserFactory()


@pytest.fixture
def charlie(db):
    """The stranger: no grant anywhere."""
    return UserFactory()


@pytest.fixture
def staff(db):
    """A site staff user."""
    return UserFactory(is_staff=True)


@pytest.fixture
def alice_namespace(alice) -> Namespace:
    return Namespace.objects.get(user=alice)


@pytest.fixture
def alice_repo(alice_namespace, bob) -> Repository:
    """alice/app: public, "alice's app"; bob collaborates on it."""
    repository = RepositoryFactory(namespace=alice_namespace, name="app", description="alice's app")
    Collaborator.objects.create(repository=repository, user=bob)
    return repository


@pytest.fixture
def alice_private(alice_namespace, bob) -> Repository:
    """alice/secret: private; bob collaborates on it."""
    repository = RepositoryFactory(namespace=alice_namespace, name="secret", is_private=True)
    Collaborator.objects.create(repository=repository, user=bob)
    return repository


@pytest.fixture
def organization(alice) -> Organization:
    """alice's organization: alice alone in its owners team, no other team, no repository."""
    return make_organization(alice)


class Org:
    """alice's organization with its private repository `service` and one member per team permission level:
    `members["read"]` is in the team readers (read on service), writers has write, admins has admin."""

    TEAM_NAMES = {"read": "readers", "write": "writers", "admin": "admins"}

    def __init__(self, organization: Organization):
        self.organization = organization
        self.name = organization.name
        self.namespace = Namespace.objects.get(organization=organization)
        self.repository = RepositoryFactory(namespace=self.namespace, name="service", is_private=True)
        self.members = {}
        self.teams = {}
        for level, team_name in self.TEAM_NAMES.items():
            member = UserFactory()
            group = team(organization, name=team_name)
            group.members.add(member)
            TeamPermission.objects.create(repository=self.repository, team=group, permission=level)
            self.members[level] = member
            self.teams[level] = group


@pytest.fixture
def org(organization) -> Org:
    """alice's organization with teams: see `Org`."""
    return Org(organization)


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_modify_db_settings):
    """Always create the test database, even when only live-server tests (which never use `db`,
    since their data must be committed) were collected: the live server must never see another one."""
    from django.test.utils import setup_databases, teardown_databases

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=verbosity, interactive=False, aliases={"default"},
                                 serialized_aliases=set())
    yield
    with django_db_blocker.unblock():
        _disconnect_other_sessions()
        teardown_databases(config, verbosity=verbosity)


def _disconnect_other_sessions() -> None:
    """PostgreSQL refuses to drop a database others are connected to: live servers that died hard, or
    connections the browser tests opened from Playwright's event-loop context."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory):
    """Logs and screenshots: kept under test-artifacts/ at the repo root when it can be written."""
    from tests.live import REPO_ROOT

    path = REPO_ROOT / "test-artifacts"
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        path = tmp_path_factory.mktemp("artifacts")
    return path


@pytest.fixture(scope="session")
def live_hub(django_db_setup, django_db_blocker, artifacts_dir):
    """gunicorn and a Celery worker (with beat) on a free loopback port, on the test database.

    Data a test makes for the live server must be committed: use the `committed` fixture, and
    unique names (the database is shared by every test of the session, never flushed).
    """
    from tests.live import start_hub

    hub = start_hub(artifacts_dir)
    yield hub
    hub.stop()


@pytest.fixture
def committed(django_db_blocker):
    """A context in which ORM writes are committed for real (visible to the live server)."""
    return django_db_blocker.unblock


@pytest.fixture
def live_user(committed):
    """Make a committed user (unique name) that can log in to the live server with PASSWORD."""

    def make(**kwargs):
        with committed():
            return UserFactory(**kwargs)

    return make


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 emulator (server mode) on a free loopback port, for the whole session."""
    from tests.cluster import start_s3

    server = start_s3(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint(s3_server) -> str:
    return s3_server.url
