"""Personas (alice owns, bob collaborates, charlie is a stranger) and shared fixtures."""

import pytest

from accounts.models import Namespace
from tests.factories import UserFactory

PASSWORD = "correct-horse-battery"


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
