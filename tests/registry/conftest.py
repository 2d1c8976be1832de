"""Fixtures most registry protocol tests share: alice's repository and a pull+push token for it; a
staging folder of the test's own."""

import pytest

from tests.registry.helpers import bearer, pull_push


@pytest.fixture
def name(alice):
    return f"{alice.username}/app"


@pytest.fixture
def token(client, alice, name):
    return pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]


@pytest.fixture
def auth(token):
    return bearer(token)


@pytest.fixture
def private_staging(settings, tmp_path):
    """A staging folder of this test's own, so "nothing is left behind" can be checked."""
    settings.UPLOAD_STAGING_DIR = tmp_path
