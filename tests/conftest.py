"""Personas (alice owns, bob collaborates, charlie is a stranger) and shared fixtures."""

import pytest

from accounts.models import Namespace
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _forget_buffered_pulls():
    """Pulls a test made and did not flush must not be credited to a later test's repository."""
    yield
    from registry.pulls import local_buffer

    with local_buffer.lock:
        local_buffer.counts.clear()


@pytest.fixture(autouse=True)
def _forget_capped_search_counts():
    """A search count one test saw reach the limit is not another test's."""
    yield
    from repositories.search import forget_capped_counts

    forget_capped_counts()


@pytest.fixture
def alice(db):
    return UserFactory()


@pytest.fixture
def bob(db):
    return UserFactory()


@pytest.fixture
def charlie(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def alice_namespace(alice):
    return Namespace.objects.get(user=alice)


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
