"""Helpers for the account page tests."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _private_cache(private_cache):
    """Every account test on a fresh in-memory cache: rate limits and used TOTP codes never leak."""


def sign_in(client: Client, user, password: str = PASSWORD):
    """Log in through allauth's form (so reauthentication-protected pages accept the session)."""
    response = client.post(reverse("account_login"), {"login": user.username, "password": password})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def reauthenticate(client: Client, password: str = PASSWORD):
    """Confirm the password again, as allauth asks before 2FA and email changes."""
    response = client.post(reverse("account_reauthenticate"), {"password": password})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


@pytest.fixture
def alice_client(client, alice):
    """alice, signed in through the login form and freshly reauthenticated."""
    sign_in(client, alice)
    reauthenticate(client)
    return client
