import pytest

from repositories.models import Repository
from tests.webhooks.receiver import Receiver
from webhooks import services


@pytest.fixture
def receiver():
    """A recording HTTP server on loopback (the hooks' target)."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def loopback_allowed(settings):
    """Deliveries may go to loopback (the test receiver); retries are due at once."""
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.HUB_WEBHOOK_BACKOFF_SECONDS = 0
    settings.HUB_PUBLIC_URL = "http://hub.example.test"
    return settings


@pytest.fixture
def repo(alice_repo) -> Repository:
    """alice/app, the hooks' repository: tests/conftest.py `alice_repo` (public; bob collaborates)."""
    return alice_repo


@pytest.fixture
def make_hook(repo, alice):
    def make(url: str, **kwargs):
        kwargs.setdefault("name", "ci")
        kwargs.setdefault("events", ["push", "tag_delete", "repository_delete"])
        return services.webhook_create(repository=kwargs.pop("repository", repo), url=url, user=alice, **kwargs)

    return make
