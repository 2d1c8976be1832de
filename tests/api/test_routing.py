"""The API shares /v2/ with the registry: repositories named like API words work in both."""

import pytest

from tests.api.conftest import auth
from tests.registry.helpers import bearer, push_image, token_for

WORDS = ["tags", "repositories", "stars", "collaborators", "groups", "stats"]


@pytest.fixture(params=WORDS)
def word_repo(request, client, alice):
    name = f"{alice.username}/{request.param}"
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    push_image(client, name, token, tag="v1")
    return name, token


def test_registry_serves_the_repository(client, word_repo):
    name, token = word_repo
    assert client.get(f"/v2/{name}/tags/list", **bearer(token)).json()["tags"] == ["v1"]
    assert client.get(f"/v2/{name}/manifests/v1", **bearer(token)).status_code == 200


def test_api_shows_the_repository(api, alice, word_repo):
    name, _ = word_repo
    assert api.get(f"/v2/repositories/{name}/", **auth(alice)).json()["name"] == name.split("/")[1]
    assert api.get(f"/v2/namespaces/{alice.username}/repositories/{name.split('/')[1]}").status_code == 200


def test_api_lists_the_repositorys_tags(api, alice, word_repo):
    name, _ = word_repo
    for path in (f"/v2/repositories/{name}/tags/", f"/v2/repositories/{name}/tags/v1",
                 f"/v2/namespaces/{alice.username}/repositories/{name.split('/')[1]}/tags"):
        assert api.get(path).status_code == 200, path


def test_api_stars_the_repository(api, alice, word_repo):
    name, _ = word_repo
    assert api.post(f"/v2/repositories/{name}/stars", **auth(alice)).status_code == 201


def test_registry_catalog_is_not_shadowed(client, alice):
    token = token_for(client, alice.username, "registry:catalog:*")
    assert "repositories" in client.get("/v2/_catalog", **bearer(token)).json()


def test_repository_named_manifests_works_in_the_api_with_or_without_slashes(api, client, alice):
    # `/v2/repositories/<ns>/<repo>/…` has three or more components after /v2/: never a registry name.
    name = f"{alice.username}/manifests"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="v1")
    assert api.get(f"/v2/repositories/{name}").status_code == 200
    assert api.get(f"/v2/repositories/{name}/tags/").json()["count"] == 1
    assert api.post(f"/v2/repositories/{name}/stars/", **auth(alice)).status_code == 201
    assert api.get(f"/v2/repositories/{name}/tags").json()["count"] == 1


def test_unknown_v2_path_gets_the_registry_404(api, db):
    response = api.get("/v2/nothing/here/at/all")
    assert response.status_code == 404
    assert "errors" in response.json()


def test_post_without_trailing_slash_is_not_redirected(api, alice):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "web"}, format="json",
                        **auth(alice))
    assert response.status_code == 201


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_tag_named_list_is_an_api_tag(api, client, alice, alice_repo, slash):
    name = f"{alice.username}/app"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="list")
    assert api.get(f"/v2/repositories/{name}/tags/list{slash}").json()["name"] == "list"
