"""The registry on the S3 blob store (moto on loopback): pushes land in the bucket, pulls are redirected
to presigned URLs, garbage collection deletes objects."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import requests
from django.utils.functional import empty

from oci.digests import content_path
from registry.blobstore import blob_store
from registry.models import Blob
from registry.services.gc import collect_garbage
from tests.registry.helpers import digest_of, push_blob, s3_store, start_upload

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def s3(moto_endpoint, bucket, tmp_path):
    """The registry's blob store is a fresh bucket for the test."""
    store = s3_store(moto_endpoint, bucket, tmp_path / "uploads")
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
    assert not any(s3.staging.folder.iterdir())
