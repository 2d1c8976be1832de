"""Immutable tags: refused moves and deletes at every door, rules as RE2 patterns, Docker Hub's API."""

import time

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from registry.models import Tag
from repositories.immutability import MAX_RULES, ImmutableTags, clean_rules
from repositories.models import Repository
from repositories.services import repository_set_immutable_tags
from tests.api.conftest import auth
from tests.registry.helpers import OCI_MANIFEST, assert_error, bearer, digest_of, pull_push, push_image, push_manifest

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def repo(client, alice, name):
    """alice/app with tags v1 and latest (two different images)."""
    token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
    first, _ = push_image(client, name, token, tag="v1")
    push_image(client, name, token, tag="latest", salt="other")
    repository = Repository.objects.get(name="app")
    repository.first_image = first
    repository.token = token
    return repository


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


def put_manifest(client, name, reference, body, token):
    return client.put(f"/v2/{name}/manifests/{reference}", data=body, content_type=OCI_MANIFEST, **bearer(token))


def protect(repository, *rules: str, enabled: bool = True) -> None:
    repository_set_immutable_tags(repository=repository, enabled=enabled, rules=list(rules))


def test_moving_an_immutable_tag_is_refused_naming_the_rule(client, name, repo):
    protect(repo, "v.*")
    other, _ = push_image_body(client, name, repo.token, salt="moved")
    response = put_manifest(client, name, "v1", other, repo.token)
    error = assert_error(response, 403, "DENIED")
    assert '"v.*"' in error["message"] and "immutable" in error["message"] and "new tag" in error["message"]
    assert Tag.objects.get(repository=repo, name="v1").manifest.digest == digest_of(repo.first_image)


def test_the_same_image_again_and_new_tags_are_accepted(client, name, repo):
    protect(repo, "v.*")
    assert push_manifest(client, name, "v1", repo.first_image, repo.token).status_code == 201
    other, _ = push_image_body(client, name, repo.token, salt="v2")
    assert push_manifest(client, name, "v2", other, repo.token).status_code == 201
    # `latest` matches no rule: it still moves.
    assert push_manifest(client, name, "latest", other, repo.token).status_code == 201


def test_every_tag_is_immutable_when_on_with_no_rules(client, name, repo):
    protect(repo)
    other, _ = push_image_body(client, name, repo.token, salt="moved")
    error = assert_error(put_manifest(client, name, "latest", other, repo.token), 403, "DENIED")
    assert "every tag" in error["message"]


def test_deleting_an_immutable_tag_is_refused_at_every_door(client, alice, name, repo, api):
    protect(repo, "v1")
    bearer = pull_push(client, alice, name, "pull,push,delete")
    assert_error(client.delete(f"/v2/{name}/manifests/v1", **bearer), 403, "DENIED")
    # By digest too: deleting the manifest would take its immutable tag with it.
    assert_error(client.delete(f"/v2/{name}/manifests/{digest_of(repo.first_image)}", **bearer), 403, "DENIED")
    response = api.delete(f"/v2/namespaces/{alice.username}/repositories/app/tags/v1", **auth(alice))
    assert response.status_code == 403 and "immutable" in response.json()["detail"]
    web = Client()
    web.force_login(alice)
    page = web.post(f"/r/{name}/tags/v1/delete", follow=True)
    assert "immutable" in page.content.decode()
    assert Tag.objects.filter(repository=repo, name="v1").exists()
    # A mutable tag is deleted as before.
    assert client.delete(f"/v2/{name}/manifests/latest", **bearer).status_code == 202


def test_signature_tags_stay_mutable(client, name, repo):
    protect(repo)
    tag = f"sha256-{digest_of(repo.first_image)[7:]}.sig"
    first, _ = push_image_body(client, name, repo.token, salt="sig1")
    second, _ = push_image_body(client, name, repo.token, salt="sig2")
    assert push_manifest(client, name, tag, first, repo.token).status_code == 201
    assert push_manifest(client, name, tag, second, repo.token).status_code == 201


def test_turning_it_off_makes_tags_mutable_again(client, name, repo):
    protect(repo, "v.*")
    protect(repo, enabled=False)
    other, _ = push_image_body(client, name, repo.token, salt="moved")
    assert push_manifest(client, name, "v1", other, repo.token).status_code == 201


def test_rules_match_the_whole_tag():
    rules = ImmutableTags(enabled=True, rules=("v.*", ".*-RELEASE"))
    assert rules.rule_for("v1.2") == "v.*"
    assert rules.rule_for("1.0-RELEASE") == ".*-RELEASE"
    assert rules.rule_for("dev-v1") is None
    assert rules.rule_for("1.0-RELEASE-candidate") is None


@pytest.mark.parametrize("rule", [r"(a)\1", "(?=v)v.*", "(?<!x)y"])
def test_a_rule_needing_backtracking_features_is_refused_with_the_reason(rule):
    with pytest.raises(ValidationError, match="linear time"):
        clean_rules([rule])


def test_rules_are_capped_in_number_and_length():
    with pytest.raises(ValidationError, match=f"At most {MAX_RULES}"):
        clean_rules([f"v{number}" for number in range(MAX_RULES + 1)])
    with pytest.raises(ValidationError, match="longer than"):
        clean_rules(["a" * 200])


def test_a_pattern_built_to_backtrack_catastrophically_matches_in_linear_time():
    rules = ImmutableTags(enabled=True, rules=tuple(clean_rules(["(a+)+$", "(a|aa)*b", "(.*a){12}"])))
    tag = "a" * 127 + "!"  # the longest tag a client may push: 128 characters
    started = time.perf_counter()
    for _ in range(100):
        assert rules.rule_for(tag) is None
    assert time.perf_counter() - started < 1.0  # Python's re takes hours on the first of these


def test_docker_hubs_api_sets_and_shows_the_settings(api, alice, repo):
    url = f"/v2/namespaces/{alice.username}/repositories/app/immutabletags"
    response = api.patch(url, {"immutable_tags": True, "immutable_tags_rules": ["v.*", ".*-RELEASE"]},
                         format="json", **auth(alice))
    assert response.status_code == 200
    assert response.json()["immutable_tags_settings"] == {"enabled": True, "rules": ["v.*", ".*-RELEASE"]}
    shown = api.get(f"/v2/namespaces/{alice.username}/repositories/app", **auth(alice)).json()
    assert shown["immutable_tags_settings"] == {"enabled": True, "rules": ["v.*", ".*-RELEASE"]}
    refused = api.patch(url, {"immutable_tags": True, "immutable_tags_rules": [r"(a)\1"]}, format="json",
                        **auth(alice))
    assert refused.status_code == 400 and "linear time" in str(refused.json()["immutable_tags_rules"])


def test_only_admins_change_the_settings(api, bob, alice, repo):
    url = f"/v2/namespaces/{alice.username}/repositories/app/immutabletags"
    response = api.patch(url, {"immutable_tags": True}, format="json", **auth(bob))
    assert response.status_code in (403, 404)
    assert not Repository.objects.get(pk=repo.pk).immutable_tags


def test_the_settings_page_offers_the_three_choices_and_saves_rules(alice, repo, name):
    web = Client()
    web.force_login(alice)
    page = web.get(f"/r/{name}/settings").content.decode()
    assert "All tags are mutable" in page and "All tags are immutable" in page and "Specific tags" in page
    saved = web.post(f"/r/{name}/settings/immutable-tags", {"mode": "rules", "rules": "v.*\n\n.*-RELEASE\n"})
    assert saved.status_code == 302
    repo.refresh_from_db()
    assert (repo.immutable_tags, repo.immutable_tags_rules) == (True, ["v.*", ".*-RELEASE"])
    refused = web.post(f"/r/{name}/settings/immutable-tags", {"mode": "rules", "rules": r"(a)\1"})
    assert refused.status_code == 400 and "linear time" in refused.content.decode()
    empty = web.post(f"/r/{name}/settings/immutable-tags", {"mode": "rules", "rules": ""})
    assert empty.status_code == 400
    web.post(f"/r/{name}/settings/immutable-tags", {"mode": "all", "rules": "ignored"})
    repo.refresh_from_db()
    assert (repo.immutable_tags, repo.immutable_tags_rules) == (True, [])


def push_image_body(client, name, token, salt):
    """Push an image's blobs and return its manifest body (not yet tagged) with its blobs."""
    from tests.registry.helpers import config_blob, image_manifest, push_blob

    config = config_blob(salt=salt)
    layer = f"layer {salt}".encode() * 50
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    return image_manifest(config, [layer]), [config, layer]
