"""end-2 blob GET/HEAD with ranges, per-repository links, end-10 blob DELETE, end-11 cross-repository mount."""


import pytest

from registry.models import Blob
from repositories.models import Repository
from tests.registry.helpers import (
    API_VERSION,
    assert_error,
    digest_of,
    pull_push,
    push_blob,
    push_image,
    token_for,
)

pytestmark = [pytest.mark.django_db]


def _content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_blob_get(client, name, auth, data, digest):
    response = client.get(f"/v2/{name}/blobs/{digest}", **auth)
    assert response.status_code == 200
    assert _content(response) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Docker-Content-Digest"] == digest
    assert response[API_VERSION[0]] == API_VERSION[1]


def test_blob_head(client, name, auth, data, digest):
    response = client.head(f"/v2/{name}/blobs/{digest}", **auth)
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(len(data))
    assert response["Docker-Content-Digest"] == digest
    assert response[API_VERSION[0]] == API_VERSION[1]


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9),
    ("bytes=10-", 10, None),
    ("bytes=-5", -5, None),
    ("bytes=5-100000", 5, None),
])
def test_blob_range(client, name, auth, data, digest, header, start, end):
    response = client.get(f"/v2/{name}/blobs/{digest}", HTTP_RANGE=header, **auth)
    assert response.status_code == 206
    expected = data[start:] if end is None else data[start:end + 1]
    assert _content(response) == expected
    first = start if start >= 0 else len(data) + start
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(expected))
    assert response["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("header", ["bytes=99999-", "bytes=10-5", "bytes=-0", "bytes=-", "items=0-1", "bytes=a-b"])
def test_blob_bad_range_is_416(client, name, auth, data, digest, header):
    response = client.get(f"/v2/{name}/blobs/{digest}", HTTP_RANGE=header, **auth)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("method", ["get", "head"])
def test_unknown_blob(client, name, auth, digest, method):
    response = getattr(client, method)(f"/v2/{name}/blobs/{digest_of(b'never pushed')}", **auth)
    assert_error(response, 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "Z" * 64, "md5:" + "a" * 32, "latest", "sha256"])
def test_malformed_blob_digest(client, name, auth, digest, bad):
    response = client.get(f"/v2/{name}/blobs/{bad}", **auth)
    assert_error(response, 400, "DIGEST_INVALID")


def test_blob_of_another_repository_is_unknown_until_mounted(client, alice, name, auth, data, digest):
    other = f"{alice.username}/bb"
    other_auth = pull_push(client, alice, other)
    push_image(client, other, other_auth["HTTP_AUTHORIZATION"][7:])  # the repository exists
    assert_error(client.head(f"/v2/{other}/blobs/{digest}", **other_auth), 404, "BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{other}/blobs/{digest}", **other_auth), 404, "BLOB_UNKNOWN")
    both = token_for(client, alice.username, f"repository:{other}:pull,push", f"repository:{name}:pull")
    mount = client.post(f"/v2/{other}/blobs/uploads/?mount={digest}&from={name}",
                        HTTP_AUTHORIZATION=f"Bearer {both}")
    assert mount.status_code == 201
    assert client.head(f"/v2/{other}/blobs/{digest}", **other_auth).status_code == 200
    assert Blob.objects.filter(digest=digest).count() == 1


def test_pushing_a_blob_present_elsewhere_links_it(client, alice, name, data, digest):
    other = f"{alice.username}/cc"
    other_auth = pull_push(client, alice, other)
    push_blob(client, other, data, other_auth["HTTP_AUTHORIZATION"][7:])
    assert client.head(f"/v2/{other}/blobs/{digest}", **other_auth).status_code == 200
    assert Blob.objects.filter(digest=digest).count() == 1


# --- end-10 DELETE blob ----------------------------------------------------------------------------


def test_delete_blob(client, alice, name, digest):
    auth = pull_push(client, alice, name, "pull,push,delete")
    response = client.delete(f"/v2/{name}/blobs/{digest}", **auth)
    assert response.status_code == 202
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert_error(client.head(f"/v2/{name}/blobs/{digest}", **auth), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(f"/v2/{name}/blobs/{digest}", **auth), 404, "BLOB_UNKNOWN")


def test_delete_blob_keeps_it_in_other_repositories(client, alice, name, data, digest):
    other = f"{alice.username}/dd"
    other_auth = pull_push(client, alice, other)
    push_blob(client, other, data, other_auth["HTTP_AUTHORIZATION"][7:])
    client.delete(f"/v2/{name}/blobs/{digest}", **pull_push(client, alice, name, "delete"))
    assert client.get(f"/v2/{other}/blobs/{digest}", **other_auth).status_code == 200


def test_delete_blob_needs_delete(client, alice, bob, name, digest):
    Repository.objects.get(name="app").collaborators.create(user=bob)
    response = client.delete(f"/v2/{name}/blobs/{digest}", **pull_push(client, bob, name, "pull,push,delete"))
    assert_error(response, 403, "DENIED")
    assert client.head(f"/v2/{name}/blobs/{digest}", **pull_push(client, alice, name)).status_code == 200


# --- end-11 cross-repository mount ----------------------------------------------------------------


def test_mount_from_a_public_repository_of_someone_else(client, alice, bob, name, digest):
    target = f"{bob.username}/copy"
    token = token_for(client, bob.username, f"repository:{target}:pull,push", f"repository:{name}:pull")
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={name}",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201
    assert response["Location"] == f"/v2/{target}/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest


def test_mount_with_basic_credentials(client, alice, name, digest):
    from tests.registry.helpers import basic

    target = f"{alice.username}/basicmount"
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={name}",
                           HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code == 201


def _mount_answer(client, bob, target, source, digest):
    token = token_for(client, bob.username, f"repository:{target}:pull,push", f"repository:{source}:pull")
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={source}",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    headers = {k: v for k, v in response.items() if k not in {"Location", "Docker-Upload-UUID", "Date"}}
    return response.status_code, headers, response.content


def test_mount_from_private_falls_back_to_upload_like_missing(client, alice, bob, name, digest):
    Repository.objects.filter(name="app").update(is_private=True)
    target = f"{bob.username}/copy"
    private = _mount_answer(client, bob, target, name, digest)
    missing = _mount_answer(client, bob, target, f"{alice.username}/nope", digest)
    assert private[0] == 202
    assert private == missing
    assert_error(client.head(f"/v2/{target}/blobs/{digest}", **pull_push(client, bob, target)), 404, "BLOB_UNKNOWN")


def test_mount_without_a_token_for_the_source_starts_an_upload(client, alice, name, digest):
    target = f"{alice.username}/copy"
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={name}",
                           **pull_push(client, alice, target))
    assert response.status_code == 202


def test_mount_of_a_blob_the_source_does_not_have_starts_an_upload(client, alice, name, digest):
    target = f"{alice.username}/copy"
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest_of(b'nope')}&from={name}",
                           **pull_push(client, alice, target))
    assert response.status_code == 202
    assert response["Range"] == "0-0"


@pytest.mark.parametrize("source", ["", "a/b/c", "UPPER/case", "library"])
def test_mount_from_a_bad_name_starts_an_upload(client, alice, digest, source):
    target = f"{alice.username}/copy"
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={source}",
                           **pull_push(client, alice, target))
    assert response.status_code == 202


def test_mount_touches_the_blob(client, alice, name, digest):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(days=3)
    Blob.objects.filter(digest=digest).update(last_touched_at=old)
    target = f"{alice.username}/touch"
    token = token_for(client, alice.username, f"repository:{target}:pull,push", f"repository:{name}:pull")
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest}&from={name}",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201
    assert Blob.objects.get(digest=digest).last_touched_at > old


def test_head_touches_an_old_blob(client, name, auth, digest):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(days=3)
    Blob.objects.filter(digest=digest).update(last_touched_at=old)
    client.head(f"/v2/{name}/blobs/{digest}", **auth)
    assert Blob.objects.get(digest=digest).last_touched_at > old
