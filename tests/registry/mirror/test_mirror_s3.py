"""The pull-through cache on the S3 blob store (moto): a streamed miss lands in the bucket in pieces, and
the next pull is redirected to a presigned URL of the verified bytes."""

from __future__ import annotations

import os

import pytest
import requests
from django.utils.functional import empty

from oci.digests import content_path
from registry.blobstore import blob_store
from registry.mirror import service
from tests.registry.helpers import bearer, digest_of, s3_store, token_for
from tests.registry.mirror.mirror_fakes import PREFIX, installed

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings, private_cache):
    yield from installed(settings)


@pytest.fixture
def s3(moto_endpoint, bucket, monkeypatch):
    store = s3_store(moto_endpoint, bucket)
    blob_store._wrapped = store
    monkeypatch.setattr(service, "WRITE_BYTES", 6 * 1024 * 1024)  # several appends for one blob
    yield store
    blob_store._wrapped = empty


def test_a_streamed_miss_lands_in_the_bucket(client, alice, upstream, s3):
    layer = os.urandom(13 * 1024 * 1024 + 5)
    upstream.add_image("library/big", "latest", layers=(layer,))
    name = f"{PREFIX}/library/big"
    auth = bearer(token_for(client, alice.username, f"repository:{name}:pull"))
    assert client.get(f"/v2/{name}/manifests/latest", **auth).status_code == 200
    response = client.get(f"/v2/{name}/blobs/{digest_of(layer)}", **auth)
    assert response.status_code == 200 and b"".join(response.streaming_content) == layer
    stored = s3.client.get_object(Bucket=s3.bucket, Key=f"blobs/{content_path(digest_of(layer))}")["Body"].read()
    assert stored == layer
    response = client.get(f"/v2/{name}/blobs/{digest_of(layer)}", **auth)
    assert response.status_code == 307
    assert requests.get(response["Location"], timeout=30).content == layer
    assert upstream.count("blob") == 1
