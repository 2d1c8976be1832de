"""Tags in both path styles: list, detail with one image per platform, delete; attachments never listed."""

import pytest

from registry.models import Tag
from tests.api.conftest import auth
from tests.registry.helpers import OCI_INDEX, index_manifest, push_image, push_manifest, token_for

STYLES = ["/v2/repositories/{ns}/{repo}/tags", "/v2/namespaces/{ns}/repositories/{repo}/tags"]


@pytest.fixture
def pushed(client, alice, alice_repo):
    name = f"{alice.username}/app"
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    push_image(client, name, token, tag="latest")
    push_image(client, name, token, tag="v1", salt="v1")
    return alice_repo


def tags_url(style, repository, suffix=""):
    return STYLES[style].format(ns=repository.namespace.name, repo=repository.name) + suffix


@pytest.mark.parametrize("style", [0, 1])
@pytest.mark.parametrize("slash", ["", "/"])
def test_list_tags(api, pushed, style, slash):
    response = api.get(tags_url(style, pushed, slash))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {t["name"] for t in body["results"]} == {"latest", "v1"}


def test_tag_shape(api, alice, pushed):
    body = api.get(tags_url(0, pushed, "/latest/")).json()
    for field in ("name", "digest", "full_size", "last_updated", "last_updater_username", "tag_status",
                  "tag_last_pulled", "tag_last_pushed", "media_type", "images"):
        assert field in body
    assert body["last_updater_username"] == alice.username
    assert body["digest"].startswith("sha256:") and body["full_size"] > 0
    [image] = body["images"]
    assert image["os"] == "linux" and image["architecture"] == "amd64" and image["status"] == "active"


def test_multi_platform_tag_lists_one_image_per_platform(api, client, alice, alice_repo):
    name = f"{alice.username}/app"
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    amd, _ = push_image(client, name, token, tag="amd", arch="amd64")
    arm, _ = push_image(client, name, token, tag="arm", arch="arm64")
    push_manifest(client, name, "multi", index_manifest([(amd, "linux", "amd64"), (arm, "linux", "arm64")]),
                  token, OCI_INDEX)
    body = api.get(tags_url(1, alice_repo, "/multi")).json()
    assert body["media_type"] == OCI_INDEX
    assert sorted(i["architecture"] for i in body["images"]) == ["amd64", "arm64"]


def test_attachment_tags_are_not_listed(api, client, alice, pushed):
    name = f"{alice.username}/app"
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    push_image(client, name, token, tag="sha256-" + "a" * 64 + ".sig")
    body = api.get(tags_url(0, pushed)).json()
    assert {t["name"] for t in body["results"]} == {"latest", "v1"}
    assert api.get(tags_url(0, pushed, "/sha256-" + "a" * 64 + ".sig/")).status_code == 404


def test_filter_by_name(api, pushed):
    body = api.get(tags_url(0, pushed, "/?name=v")).json()
    assert [t["name"] for t in body["results"]] == ["v1"]


def test_order_by_name(api, pushed):
    body = api.get(tags_url(0, pushed, "/?ordering=-name")).json()
    assert [t["name"] for t in body["results"]] == ["v1", "latest"]


def test_tags_of_a_private_repository_are_404_for_a_stranger(api, alice, charlie, alice_private):
    assert api.get(tags_url(0, alice_private), **auth(charlie)).status_code == 404


def test_missing_tag_is_404(api, pushed):
    assert api.get(tags_url(0, pushed, "/nope/")).status_code == 404


@pytest.mark.parametrize("style", [0, 1])
def test_owner_deletes_a_tag(api, alice, pushed, style):
    response = api.delete(tags_url(style, pushed, "/v1/"), **auth(alice))
    assert response.status_code == 204
    assert not Tag.objects.filter(repository=pushed, name="v1").exists()


def test_collaborator_cannot_delete_a_tag(api, bob, pushed):
    assert api.delete(tags_url(0, pushed, "/v1/"), **auth(bob)).status_code == 403


def test_anonymous_tag_delete_is_401(api, pushed):
    assert api.delete(tags_url(0, pushed, "/v1/")).status_code == 401


def test_deleting_a_missing_tag_is_404(api, alice, pushed):
    assert api.delete(tags_url(0, pushed, "/nope/"), **auth(alice)).status_code == 404


def test_team_admin_deletes_an_org_tag(api, client, alice, org):
    name = f"{org.name}/service"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="v1")
    response = api.delete(f"/v2/repositories/{name}/tags/v1", **auth(org.members["admin"]))
    assert response.status_code == 204


def test_team_write_cannot_delete_an_org_tag(api, client, alice, org):
    name = f"{org.name}/service"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="v1")
    assert api.delete(f"/v2/repositories/{name}/tags/v1", **auth(org.members["write"])).status_code == 403


def test_team_read_lists_org_tags(api, client, alice, org):
    name = f"{org.name}/service"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="v1")
    assert api.get(f"/v2/repositories/{name}/tags", **auth(org.members["read"])).json()["count"] == 1
