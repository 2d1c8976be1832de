"""Inbound triggers: tokens, signatures, payload shapes, skip markers."""

import hashlib
import hmac
import json

import pytest

from builds.models import Build

pytestmark = pytest.mark.django_db


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(client, url: str, payload=None, **headers):
    body = b"" if payload is None else json.dumps(payload).encode()
    return client.post(url, data=body, content_type="application/json", **headers)


def generic_url(source, token):
    return f"/api/build/{source.uuid}/trigger/{token}/"


GENERIC = {"commit": "a" * 40, "ref": "refs/heads/main", "default_branch": "main",
           "commit_info": {"message": "change", "author": {"username": "alice"}}}


def test_generic_payload_queues_a_build_of_the_default_rule(client, linked):
    source, token = linked
    response = post(client, generic_url(source, token), GENERIC)
    assert response.status_code == 202, response.content
    [build] = Build.objects.all()
    assert (build.state, build.tag, build.commit, build.ref) == ("queued", "latest", "a" * 40, "refs/heads/main")


def test_unknown_token_is_refused(client, linked):
    source, _ = linked
    response = post(client, generic_url(source, "wrong"), GENERIC)
    assert response.status_code == 404 and "Unknown build trigger" in response.json()["detail"]
    assert not Build.objects.exists()


def test_token_never_appears_in_the_log(client, linked, caplog):
    source, token = linked
    post(client, generic_url(source, token), GENERIC)
    post(client, generic_url(source, token + "x"), GENERIC)
    assert token not in caplog.text


def test_empty_body_builds_every_plain_rule(client, linked):
    source, token = linked
    response = post(client, generic_url(source, token))
    assert response.status_code == 202
    assert list(Build.objects.values_list("ref", "tag", "commit")) == [("refs/heads/main", "latest", "")]


def test_docker_hub_payload(client, linked):
    source, token = linked
    response = post(client, generic_url(source, token), {"source_type": "Branch", "source_name": "main"})
    assert response.status_code == 202


def test_skip_build_marker(client, linked):
    source, token = linked
    payload = {**GENERIC, "commit_info": {"message": "docs [skip build]"}}
    response = post(client, generic_url(source, token), payload)
    assert response.status_code == 200 and not Build.objects.exists()


def test_branch_without_rule_builds_nothing(client, linked):
    source, token = linked
    response = post(client, generic_url(source, token), {**GENERIC, "ref": "refs/heads/other"})
    assert response.status_code == 200 and not Build.objects.exists()


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "garbage"])
def test_secret_requires_a_valid_signature(client, linked, signature):
    source, token = linked
    source.webhook_secret = "s3cret"
    source.save()
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature else {}
    response = post(client, generic_url(source, token), GENERIC, **headers)
    assert response.status_code == 403 and not Build.objects.exists()


def test_secret_with_a_valid_signature(client, linked):
    source, token = linked
    source.webhook_secret = "s3cret"
    source.save()
    body = json.dumps(GENERIC).encode()
    response = client.post(generic_url(source, token), data=body, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE_256=sign("s3cret", body))
    assert response.status_code == 202


def test_builds_disabled(client, linked, settings):
    settings.HUB_BUILDS_ENABLED = False
    source, token = linked
    assert post(client, generic_url(source, token), GENERIC).status_code == 503


GITHUB_PUSH = {"ref": "refs/heads/main", "after": "b" * 40, "deleted": False,
               "head_commit": {"id": "b" * 40, "message": "from github"}}


def test_github_refuses_a_source_without_a_secret(client, linked):
    source, _ = linked
    response = post(client, f"/api/build/{source.uuid}/github/", GITHUB_PUSH, HTTP_X_GITHUB_EVENT="push")
    assert response.status_code == 403


def test_github_signed_push(client, linked):
    source, _ = linked
    source.webhook_secret = "gh"
    source.save()
    body = json.dumps(GITHUB_PUSH).encode()
    url = f"/api/build/{source.uuid}/github/"
    good = client.post(url, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="push",
                       HTTP_X_HUB_SIGNATURE_256=sign("gh", body))
    assert good.status_code == 202 and Build.objects.get().commit == "b" * 40
    bad = client.post(url, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="push",
                      HTTP_X_HUB_SIGNATURE_256=sign("other", body))
    assert bad.status_code == 403
    ping = client.post(url, data=b"{}", content_type="application/json", HTTP_X_GITHUB_EVENT="ping",
                       HTTP_X_HUB_SIGNATURE_256=sign("gh", b"{}"))
    assert ping.status_code == 200


def test_bitbucket_push_of_a_tag(client, linked, repository):
    from builds.services import build_rule_create

    build_rule_create(repository=repository, source_type="tag", source=r"/^v([0-9.]+)$/", docker_tag=r"{\1}")
    source, token = linked
    payload = {"push": {"changes": [{"new": {"type": "tag", "name": "v1.2",
                                             "target": {"hash": "c" * 40, "message": "release"}}}]}}
    url = f"/api/build/{source.uuid}/bitbucket/{token}/"
    response = post(client, url, payload, HTTP_X_EVENT_KEY="repo:push")
    assert response.status_code == 202
    assert Build.objects.get().tag == "1.2"
    assert post(client, f"/api/build/{source.uuid}/bitbucket/nope/", payload,
                HTTP_X_EVENT_KEY="repo:push").status_code == 404
