"""GET /v2/_catalog: only what the caller may see, paged with n, last and Link."""

import pytest

from accounts.models import Namespace
from repositories.models import Repository
from tests.factories import library_namespace
from tests.registry.helpers import (
    API_VERSION,
    assert_error,
    basic,
    bearer,
    parse_challenge,
    token_for,
)

pytestmark = [pytest.mark.django_db]

CATALOG = "registry:catalog:*"


@pytest.fixture
def repositories(alice, bob):
    alice_ns, bob_ns = Namespace.objects.get(user=alice), Namespace.objects.get(user=bob)
    Repository.objects.create(namespace=alice_ns, name="public1")
    Repository.objects.create(namespace=alice_ns, name="secret", is_private=True)
    Repository.objects.create(namespace=bob_ns, name="public2")
    Repository.objects.create(namespace=bob_ns, name="hidden", is_private=True)
    Repository.objects.create(namespace=library_namespace(), name="busybox")
    return {
        "public": sorted([f"{alice.username}/public1", f"{bob.username}/public2", "library/busybox"]),
        "alice": f"{alice.username}/secret",
        "bob": f"{bob.username}/hidden",
    }


def _catalog(client, user=None, query=""):
    token = token_for(client, user.username if user else None, CATALOG)
    return client.get(f"/v2/_catalog{query}", **bearer(token))


def test_anonymous_sees_public(client, repositories):
    response = _catalog(client)
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert response.json() == {"repositories": repositories["public"]}


def test_owner_sees_own_private(client, alice, repositories):
    names = _catalog(client, alice).json()["repositories"]
    assert names == sorted([*repositories["public"], repositories["alice"]])


def test_collaborator_sees_the_private_repository(client, alice, bob, repositories):
    Repository.objects.get(name="secret").collaborators.create(user=bob)
    names = _catalog(client, bob).json()["repositories"]
    assert repositories["alice"] in names and repositories["bob"] in names


def test_basic_credentials_list_too(client, alice, repositories):
    response = client.get("/v2/_catalog", HTTP_AUTHORIZATION=basic(alice.username))
    assert response.json()["repositories"] == sorted([*repositories["public"], repositories["alice"]])


def test_no_credentials_are_challenged_with_the_catalog_scope(client, repositories):
    response = client.get("/v2/_catalog")
    assert_error(response, 401, "UNAUTHORIZED")
    assert parse_challenge(response["WWW-Authenticate"])[1]["scope"] == CATALOG


def test_token_without_catalog_scope_is_challenged(client, alice, repositories):
    from django.conf import settings

    response = client.get("/v2/_catalog", **bearer(token_for(client, alice.username)))
    assert_error(response, 401, "UNAUTHORIZED")
    scheme, params = parse_challenge(response["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": f"{settings.HUB_PUBLIC_URL}/token", "service": settings.REGISTRY_SERVICE,
                      "scope": CATALOG, "error": "insufficient_scope"}


def test_paging(client, repositories):
    public = repositories["public"]
    first = _catalog(client, query="?n=2")
    assert first.json()["repositories"] == public[:2]
    assert first["Link"] == f'</v2/_catalog?last={public[1].replace("/", "%2F")}&n=2>; rel="next"'
    link = first["Link"].split(">")[0][1:]
    second = client.get(link, **bearer(token_for(client, None, CATALOG)))
    assert second.json()["repositories"] == public[2:]
    assert "Link" not in second


def test_n_zero(client, repositories):
    assert _catalog(client, query="?n=0").json() == {"repositories": []}


def test_last(client, repositories):
    public = repositories["public"]
    assert _catalog(client, query=f"?last={public[0]}").json()["repositories"] == public[1:]
