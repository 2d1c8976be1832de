"""Hub API fixtures: an APIClient and JWT headers. The personas and their repositories and organization
(alice_repo, alice_private, org) are in tests/conftest.py."""

import pytest
from rest_framework.test import APIClient

from hub.api import issue_api_token


@pytest.fixture(autouse=True)
def _private_cache(private_cache):
    """Every Hub API test on a fresh in-memory cache: login throttles never leak between tests."""


@pytest.fixture
def api():
    return APIClient()


def auth(user, token=None) -> dict[str, str]:
    """`Authorization: Bearer <jwt>` for `user` (optionally made from a personal access token)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user, token=token)}"}
