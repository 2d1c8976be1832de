import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    """A recording HTTP server on loopback (the outbound client's counterpart)."""
    server = Receiver()
    yield server
    server.close()
