"""Fixtures most registry protocol tests share: alice's repository and a pull+push token for it."""

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
