"""end-4a/4b/5/6/13 and upload cancel: monolithic, POST+PUT, chunked PATCH, status and errors."""

import io
import re
import threading
import uuid

import pytest
from django.test import RequestFactory

from registry.blobstore import blob_store
from registry.models import Blob, BlobUpload, RepositoryBlob
from registry.services import uploads
from registry.views.blobs import UploadView
from tests.registry.helpers import (
    API_VERSION,
    assert_error,
    bearer,
    digest_of,
    pull_push,
    start_upload,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite, pytest.mark.usefixtures("private_staging")]

DATA = b"0123456789abcdef" * 64  # 1 KiB
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def auth(client, alice, name):
    return pull_push(client, alice, name)


def _blob_readable(client, name, auth, data):
    response = client.get(f"/v2/{name}/blobs/{digest_of(data)}", **auth)
    return response.status_code == 200 and b"".join(response.streaming_content) == data


def _no_upload_state():
    return not BlobUpload.objects.exists() and not any(blob_store.staging.folder.iterdir())



def test_post_starts_an_upload(client, name, auth):
    response = client.post(f"/v2/{name}/blobs/uploads/", **auth)
    assert response.status_code == 202
    assert response[API_VERSION[0]] == API_VERSION[1]
    upload_id = response["Docker-Upload-UUID"]
    assert UUID_RE.match(upload_id)
    assert response["Location"] == f"/v2/{name}/blobs/uploads/{upload_id}"
    assert response["Range"] == "0-0"
    assert response["Content-Length"] == "0"


def test_monolithic_post_with_digest(client, name, auth):
    digest = digest_of(DATA)
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=DATA,
                           content_type="application/octet-stream", **auth)
    assert response.status_code == 201
    assert response["Location"] == f"/v2/{name}/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest
    assert _blob_readable(client, name, auth, DATA)
    assert not BlobUpload.objects.exists()


def test_post_then_put_whole_body(client, name, auth):
    location = start_upload(client, name, auth)
    digest = digest_of(DATA)
    response = client.put(f"{location}?digest={digest}", data=DATA, content_type="application/octet-stream", **auth)
    assert response.status_code == 201
    assert response["Location"] == f"/v2/{name}/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest
    assert _blob_readable(client, name, auth, DATA)


def test_patch_with_content_range(client, name, auth):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=DATA[:100], content_type="application/octet-stream",
                            HTTP_CONTENT_RANGE="0-99", **auth)
    assert response.status_code == 202
    assert response["Location"] == location
    assert response["Range"] == "0-99"
    assert UUID_RE.match(response["Docker-Upload-UUID"])


def test_multi_request_upload_is_verified_by_rereading(client, name, auth):
    location = start_upload(client, name, auth)
    first = client.patch(location, data=DATA[:300], content_type="application/octet-stream",
                         HTTP_CONTENT_RANGE="0-299", **auth)
    assert first["Range"] == "0-299"
    second = client.patch(location, data=DATA[300:], content_type="application/octet-stream",
                          HTTP_CONTENT_RANGE=f"300-{len(DATA) - 1}", **auth)
    assert second.status_code == 202
    assert second["Range"] == f"0-{len(DATA) - 1}"
    upload = BlobUpload.objects.get()
    assert upload.single_pass_digest == ""  # two requests: the digest comes from re-reading
    response = client.put(f"{location}?digest={digest_of(DATA)}", **auth)
    assert response.status_code == 201
    assert _blob_readable(client, name, auth, DATA)


def test_multi_request_upload_with_wrong_digest_is_refused(client, name, auth):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA[:300], content_type="application/octet-stream", **auth)
    client.patch(location, data=DATA[300:], content_type="application/octet-stream", **auth)
    response = client.put(f"{location}?digest={digest_of(DATA[:-1] + b'!')}", **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()


def test_patch_without_content_range(client, name, auth):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=DATA, content_type="application/octet-stream", **auth)
    assert response.status_code == 202
    assert response["Range"] == f"0-{len(DATA) - 1}"
    assert client.put(f"{location}?digest={digest_of(DATA)}", **auth).status_code == 201


def test_empty_patch_leaves_no_hashing_thread(client, name, auth):
    """A PATCH with no bytes at the start of an upload writes nothing and keeps no thread running."""
    location = start_upload(client, name, auth)
    before = {t for t in threading.enumerate() if t.name == "upload-hasher"}
    response = client.patch(location, data=b"", content_type="application/octet-stream", **auth)
    assert response.status_code == 202
    assert {t for t in threading.enumerate() if t.name == "upload-hasher"} == before


def test_put_with_last_chunk(client, name, auth):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA[:10], content_type="application/octet-stream", **auth)
    response = client.put(f"{location}?digest={digest_of(DATA)}", data=DATA[10:],
                          content_type="application/octet-stream", **auth)
    assert response.status_code == 201
    assert _blob_readable(client, name, auth, DATA)


@pytest.mark.parametrize("content_range", ["1-100", "50-149", "200-299"])
def test_out_of_order_patch_is_416(client, name, auth, content_range):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA[:50], content_type="application/octet-stream", **auth)
    response = client.patch(location, data=DATA[:100], content_type="application/octet-stream",
                            HTTP_CONTENT_RANGE=content_range, **auth)
    if content_range == "50-149":
        assert response.status_code == 202  # the one in-order range
        return
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert response["Range"] == "0-49"
    assert BlobUpload.objects.get().size == 50


def test_content_range_not_matching_length_is_416(client, name, auth):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=DATA[:10], content_type="application/octet-stream",
                            HTTP_CONTENT_RANGE="0-99", **auth)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize("content_range", ["bytes", "a-b", "10-5", "-", "0-", "0-" + "9" * 5000])
def test_malformed_content_range_is_refused(client, name, auth, content_range):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=b"x", content_type="application/octet-stream",
                            HTTP_CONTENT_RANGE=content_range, **auth)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")


def test_wrong_digest_at_put_removes_the_upload(client, name, auth):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA, content_type="application/octet-stream", **auth)
    response = client.put(f"{location}?digest={digest_of(b'something else')}", **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()
    assert_error(client.get(location, **auth), 404, "BLOB_UPLOAD_UNKNOWN")
    assert _no_upload_state()


def test_monolithic_post_with_mismatching_bytes_stores_nothing(client, name, auth):
    data, claimed = f"unique {uuid.uuid4()}".encode(), f"claimed {uuid.uuid4()}".encode()
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest_of(claimed)}", data=data,
                           content_type="application/octet-stream", **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()
    assert not blob_store.exists(digest_of(data))
    assert not blob_store.exists(digest_of(claimed))
    assert _no_upload_state()


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "G" * 64, "md5:" + "a" * 32, "nonsense", "sha256:"])
def test_monolithic_post_with_malformed_digest(client, name, auth, digest):
    response = client.post(f"/v2/{name}/blobs/uploads/", QUERY_STRING=f"digest={digest}", data=DATA,
                           content_type="application/octet-stream", **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()
    assert _no_upload_state()


@pytest.mark.parametrize("digest", ["sha256:abc", "nonsense", ""])
def test_put_with_malformed_digest(client, name, auth, digest):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA, content_type="application/octet-stream", **auth)
    response = client.put(f"{location}?digest={digest}", **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Blob.objects.exists()


def test_sha512_digest_is_accepted(client, name, auth):
    import hashlib

    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=DATA,
                           content_type="application/octet-stream", **auth)
    assert response.status_code == 201
    assert response["Docker-Content-Digest"] == digest


def test_upload_status(client, name, auth):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA[:100], content_type="application/octet-stream", **auth)
    response = client.get(location, **auth)
    assert response.status_code == 204
    assert response["Range"] == "0-99"
    assert response["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    assert response["Location"] == location
    assert response[API_VERSION[0]] == API_VERSION[1]


def test_cancel_upload(client, name, auth):
    location = start_upload(client, name, auth)
    client.patch(location, data=DATA, content_type="application/octet-stream", **auth)
    response = client.delete(location, **auth)
    assert response.status_code == 204
    assert_error(client.delete(location, **auth), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.get(location, **auth), 404, "BLOB_UPLOAD_UNKNOWN")
    assert _no_upload_state()


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
@pytest.mark.parametrize("upload_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "%00", "x" * 300])
def test_unknown_or_malformed_upload_id(client, name, auth, method, upload_id):
    start_upload(client, name, auth)  # the repository exists
    url = f"/v2/{name}/blobs/uploads/{upload_id}"
    if method == "put":
        url += f"?digest={digest_of(DATA)}"
    response = getattr(client, method)(url, **auth)
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_of_another_repository_is_unknown(client, alice, name, auth):
    location = start_upload(client, name, auth)
    other = f"{alice.username}/other"
    other_auth = pull_push(client, alice, other)
    start_upload(client, other, other_auth)
    upload_id = location.rsplit("/", 1)[1]
    response = client.patch(f"/v2/{other}/blobs/uploads/{upload_id}", data=b"x",
                            content_type="application/octet-stream", **other_auth)
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_stranger_cannot_write_to_an_upload(client, bob, name, auth):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=b"x", content_type="application/octet-stream",
                            **pull_push(client, bob, name))
    assert_error(response, 403, "DENIED")


def test_pushing_the_same_blob_twice_stores_it_once(client, name, auth):
    for _ in range(2):
        client.post(f"/v2/{name}/blobs/uploads/?digest={digest_of(DATA)}", data=DATA,
                    content_type="application/octet-stream", **auth)
    assert Blob.objects.count() == 1
    assert RepositoryBlob.objects.count() == 1


# --- Transfer-Encoding: chunked (podman, buildah): the test client cannot send it ------------------


def _chunked_request(method: str, path: str, data: bytes, **headers):
    request = getattr(RequestFactory(), method)(path, **headers)
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.environ["wsgi.input"] = io.BytesIO(data)
    return request


def test_request_body_reads_a_chunked_body(settings):
    settings.REGISTRY_UPLOAD_CHUNK_BYTES = 100
    body = uploads.request_body(_chunked_request("patch", "/x", DATA))
    assert body.length is None
    chunks = list(body.chunks)
    assert b"".join(chunks) == DATA
    assert max(len(chunk) for chunk in chunks) <= 100


def test_request_body_without_length_or_chunking_is_empty():
    request = RequestFactory().patch("/x")
    request.META.pop("CONTENT_LENGTH", None)
    body = uploads.request_body(request)
    assert body.empty and list(body.chunks) == []


def test_chunked_patch_through_the_view(client, name, auth):
    location = start_upload(client, name, auth)
    upload_id = location.rsplit("/", 1)[1]
    request = _chunked_request("patch", location, DATA, **auth)
    response = UploadView.as_view()(request, name=name, upload_id=upload_id)
    assert response.status_code == 202
    assert response["Range"] == f"0-{len(DATA) - 1}"
    assert BlobUpload.objects.get().single_pass_digest == digest_of(DATA)
    assert client.put(f"{location}?digest={digest_of(DATA)}", **auth).status_code == 201
    assert _blob_readable(client, name, auth, DATA)


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_bad_content_length_is_refused(name, auth, client, length):
    location = start_upload(client, name, auth)
    request = RequestFactory().patch(location, **auth)
    request.META["CONTENT_LENGTH"] = length
    response = UploadView.as_view()(request, name=name, upload_id=location.rsplit("/", 1)[1])
    assert response.status_code == 400
    assert response[API_VERSION[0]] == API_VERSION[1]


def test_bearer_for_another_repository_cannot_patch(client, alice, name, auth):
    location = start_upload(client, name, auth)
    response = client.patch(location, data=b"x", content_type="application/octet-stream",
                            **bearer(pull_push(client, alice, f"{alice.username}/else")["HTTP_AUTHORIZATION"][7:]))
    assert response.status_code in (401, 403)
