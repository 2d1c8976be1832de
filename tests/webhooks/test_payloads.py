"""The pure payload builder: Docker Hub's keys, order and types (REFERENCE.md §5), and the signature."""

import hashlib
import hmac
import json

from webhooks import payloads

BASE = "https://hub.example.com"


def push_document(**repo_overrides) -> dict:
    repository = payloads.repository_section(
        base_url=BASE, namespace="alice", name="app", is_private=True, is_official=False, description="d",
        full_description="fd", star_count=3, date_created=1700000000, **repo_overrides)
    data = payloads.push_section(pushed_at=1700000100, pusher="alice", tag="v1", digest="sha256:" + "a" * 64,
                                 media_type="application/vnd.oci.image.manifest.v1+json")
    callback = payloads.callback_url(base_url=BASE, namespace="alice", name="app", callback_id="f" * 32)
    return payloads.event_payload(event=payloads.PUSH, callback=callback, data=data, repository=repository)


def test_push_payload_has_docker_hub_keys_in_order_with_their_types():
    document = json.loads(payloads.encode(push_document()))
    assert list(document) == ["callback_url", "push_data", "repository"]
    assert document["callback_url"] == f"{BASE}/u/alice/app/hook/{'f' * 32}/"
    push = document["push_data"]
    assert list(push)[:4] == ["pushed_at", "pusher", "tag", "images"]
    assert type(push["pushed_at"]) is int and push["pusher"] == "alice" and push["tag"] == "v1"
    assert push["images"] == []
    assert push["digest"] == "sha256:" + "a" * 64
    assert push["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    repository = document["repository"]
    expected_types = {
        "comment_count": int, "date_created": int, "description": str, "dockerfile": str,
        "full_description": str, "is_official": bool, "is_private": bool, "is_trusted": bool, "name": str,
        "namespace": str, "owner": str, "repo_name": str, "repo_url": str, "star_count": int, "status": str,
    }
    assert list(repository) == list(expected_types)
    assert {key: type(value) for key, value in repository.items()} == expected_types
    assert repository["repo_name"] == "alice/app" and repository["owner"] == "alice"
    assert repository["repo_url"] == f"{BASE}/r/alice/app"
    assert repository["status"] == "Active" and repository["comment_count"] == 0


def test_official_repository_uses_the_library_namespace():
    section = payloads.repository_section(
        base_url=BASE, namespace="library", name="ubuntu", is_private=False, is_official=True, description="",
        full_description="", star_count=0, date_created=0)
    assert section["repo_name"] == "library/ubuntu"
    assert section["owner"] == "library" and section["is_official"] is True
    assert section["repo_url"] == f"{BASE}/r/library/ubuntu"


def test_encode_is_compact_utf8_json():
    body = payloads.encode({"a": "é", "b": [1, 2]})
    assert body == '{"a":"é","b":[1,2]}'.encode()


def test_signature_is_hmac_sha256_of_the_exact_body():
    body = payloads.encode(push_document())
    signature = payloads.sign("s3cret-value", body)
    expected = hmac.new(b"s3cret-value", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert payloads.verify("s3cret-value", body, signature)


def test_signature_fails_for_another_body_or_secret():
    body = payloads.encode(push_document())
    signature = payloads.sign("s3cret-value", body)
    assert not payloads.verify("s3cret-value", body + b" ", signature)
    assert not payloads.verify("other-secret", body, signature)


def test_is_trusted_follows_automated_builds():
    from webhooks.payloads import repository_section

    common = {"base_url": "http://hub", "namespace": "alice", "name": "app", "is_private": False,
              "is_official": False, "description": "", "full_description": "", "star_count": 0,
              "date_created": 0}
    assert repository_section(**common)["is_trusted"] is False
    assert repository_section(**common, is_trusted=True)["is_trusted"] is True
