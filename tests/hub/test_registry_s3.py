"""The registry on S3 storage (moto on loopback): blobs land in the bucket, GETs redirect to it."""

from __future__ import annotations

import hashlib
import json

import requests

from tests.hub.support import run_django
from tests.hub.test_storages import bucket, s3_env  # noqa: F401 - the bucket fixture

SCRIPT = r"""
import base64, hashlib, json
from django.test import Client
from accounts.models import User

User.objects.create_user("s3alice", "s3alice@example.com", "s3-password-123")
client = Client()
auth = "Basic " + base64.b64encode(b"s3alice:s3-password-123").decode()
token = client.get("/token", {"service": "127.0.0.1:8000", "scope": "repository:s3alice/app:pull,push"},
                   HTTP_AUTHORIZATION=auth).json()["token"]
bearer = {"HTTP_AUTHORIZATION": "Bearer " + token}
data = b"layer bytes on s3 " * 5000
digest = "sha256:" + hashlib.sha256(data).hexdigest()
start = client.post("/v2/s3alice/app/blobs/uploads/", **bearer)
location = start["Location"]
patched = client.generic("PATCH", location, data, content_type="application/octet-stream",
                         HTTP_CONTENT_RANGE=f"0-{len(data) - 1}", **bearer)
put = client.put(f"{location}?digest={digest}", b"", content_type="application/octet-stream", **bearer)
head = client.head(f"/v2/s3alice/app/blobs/{digest}", **bearer)
get = client.get(f"/v2/s3alice/app/blobs/{digest}", **bearer)
from django.core.files.storage import storages
print(json.dumps({
    "start": start.status_code, "patch": patched.status_code, "put": put.status_code,
    "head": head.status_code, "head_length": head["Content-Length"],
    "get": get.status_code, "location": get.get("Location", ""), "digest": digest, "size": len(data),
    "in_bucket": storages["blobs"].exists("sha256/" + digest[7:9] + "/" + digest[7:]),
}))
"""


def test_blobs_upload_to_the_bucket_and_get_redirects_to_a_presigned_url(data_dir, moto_endpoint, bucket):  # noqa: F811
    env = s3_env(data_dir, moto_endpoint, bucket)
    result = json.loads(run_django(env, SCRIPT).stdout.strip().splitlines()[-1])
    assert (result["start"], result["patch"], result["put"], result["head"]) == (202, 202, 201, 200)
    assert result["in_bucket"] is True
    assert result["head_length"] == str(result["size"])
    assert result["get"] == 307
    fetched = requests.get(result["location"], timeout=10)
    assert fetched.status_code == 200
    assert len(fetched.content) == result["size"]
    assert "sha256:" + hashlib.sha256(fetched.content).hexdigest() == result["digest"]


def test_staging_stays_local_and_is_emptied_after_the_upload(data_dir, moto_endpoint, bucket):  # noqa: F811
    env = s3_env(data_dir, moto_endpoint, bucket)
    run_django(env, SCRIPT)
    assert list((data_dir / "uploads").iterdir()) == []
