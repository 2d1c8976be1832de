"""The registry on the S3 blob store (moto on loopback): pushes land in the bucket, pulls are redirected
to presigned URLs, garbage collection deletes objects."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils.functional import empty

from oci.digests import content_path
from registry.blobstore import blob_store
from registry.errors import BlobUploadInvalid
from registry.models import Blob, BlobUpload
from registry.services import uploads
from registry.services.gc import collect_garbage
from repositories.models import Repository
from tests.registry.helpers import digest_of, push_blob, s3_store, start_upload

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def s3(moto_endpoint, bucket):
    """The registry's blob store is a fresh bucket for the test."""
    store = s3_store(moto_endpoint, bucket)
    blob_store._wrapped = store
    yield store
    blob_store._wrapped = empty  # made again from the settings on next use


def stored(store, digest: str) -> bytes:
    return store.client.get_object(Bucket=store.bucket, Key=f"blobs/{content_path(digest)}")["Body"].read()


def test_a_chunked_push_lands_in_the_bucket(client, name, auth, s3):
    data = os.urandom(200_000)
    location = start_upload(client, name, auth)
    for start in (0, 100_000):
        response = client.patch(location, data=data[start:start + 100_000], content_type="application/octet-stream",
                                HTTP_CONTENT_RANGE=f"{start}-{start + 99_999}", **auth)
        assert response.status_code == 202, response.content

    response = client.put(f"{location}?digest={digest_of(data)}", **auth)

    assert response.status_code == 201, response.content
    assert stored(s3, digest_of(data)) == data
    assert Blob.objects.get(digest=digest_of(data)).size == len(data)


def test_a_blob_get_redirects_to_a_presigned_url_of_its_bytes(client, name, auth, token, s3):
    data = os.urandom(1000)
    push_blob(client, name, data, token)

    response = client.get(f"/v2/{name}/blobs/{digest_of(data)}", **auth)

    assert response.status_code == 307
    fetched = requests.get(response["Location"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == data


def test_garbage_collection_deletes_the_object(client, name, token, s3):
    data = os.urandom(1000)
    push_blob(client, name, data, token)

    collect_garbage(grace=timedelta(0))

    assert not Blob.objects.filter(digest=digest_of(data)).exists()
    assert not s3.exists(digest_of(data))


def test_a_monolithic_push_with_the_wrong_digest_leaves_the_bucket_empty(client, name, auth, s3):
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest_of(b'claimed')}", data=b"other bytes",
                           content_type="application/octet-stream", **auth)

    assert response.status_code == 400
    assert s3.client.list_objects_v2(Bucket=s3.bucket).get("KeyCount") == 0


@pytest.mark.django_db(transaction=True)
def test_racing_appends_count_the_request_recorded_first_only(s3, alice_namespace):
    """The S3 store holds no lock: two PATCHes at one offset both write objects of their own, the
    database records one, and the upload holds exactly that one's bytes."""
    repository = Repository.objects.create(namespace=alice_namespace, name="race")
    upload = uploads.upload_start(repository=repository, user=None)
    bodies = {"first": os.urandom(100_000), "second": os.urandom(100_000)}
    both_read, outcomes = threading.Barrier(2), {}

    def append(name):
        def chunks():
            yield bodies[name]
            both_read.wait(10)  # both requests resumed from the same state before either records

        try:
            uploads.upload_append(upload=BlobUpload.objects.get(pk=upload.pk),
                                  body=uploads.Body(len(bodies[name]), chunks()))
            outcomes[name] = "recorded"
        except BlobUploadInvalid:
            outcomes[name] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(name,)) for name in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes.values()) == ["recorded", "refused"]
    winner = next(bodies[name] for name, outcome in outcomes.items() if outcome == "recorded")
    uploads.upload_finish(upload=BlobUpload.objects.get(pk=upload.pk), digest=digest_of(winner),
                          body=uploads.Body(0, iter(())))
    assert stored(s3, digest_of(winner)) == winner


def test_an_upload_begun_on_a_nodes_disk_before_the_upgrade_is_unknown(client, name, auth, alice_namespace, s3):
    """Its bytes are in no bucket: the client is told to start it again, not given a wrong blob."""
    repository = Repository.objects.create(namespace=alice_namespace, name="app")
    upload = BlobUpload.objects.create(repository=repository, size=10)  # no store state: staged on a disk

    response = client.patch(f"/v2/{name}/blobs/uploads/{upload.id}", data=b"more bytes",
                            content_type="application/octet-stream", **auth)

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert not BlobUpload.objects.filter(pk=upload.pk).exists()
