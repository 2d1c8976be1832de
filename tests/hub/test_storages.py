"""Which backend each storage alias gets, and a real round trip through S3 (moto on loopback)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
import requests

from tests.hub.support import hub_env, run_django, settings_values

BYTE_ALIASES = ("blobs", "build-logs")


def s3_env(data_dir, endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    return hub_env(
        data_dir, HUB_S3_BUCKET=bucket, HUB_S3_ENDPOINT_URL=endpoint, HUB_S3_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="wharf-test", AWS_SECRET_ACCESS_KEY="wharf-test-secret", **extra,
    )


@pytest.fixture
def bucket(moto_endpoint) -> str:
    name = f"wharf-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="wharf-test", aws_secret_access_key="wharf-test-secret",
    ).create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("alias", BYTE_ALIASES)
def test_byte_aliases_default_to_the_filesystem_under_the_data_dir(tmp_path, alias):
    storages = settings_values(hub_env(tmp_path), "STORAGES")["STORAGES"]
    assert storages[alias]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storages[alias]["OPTIONS"]["location"] == str(tmp_path / alias)


@pytest.mark.parametrize("alias", BYTE_ALIASES)
def test_byte_aliases_use_s3_when_a_bucket_is_set(tmp_path, alias):
    env = hub_env(tmp_path, HUB_S3_BUCKET="wharf-blobs", HUB_S3_ENDPOINT_URL="http://127.0.0.1:9",
                  HUB_S3_REGION="eu-west-3")
    storage = settings_values(env, "STORAGES")["STORAGES"][alias]
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"]["bucket_name"] == "wharf-blobs"
    assert storage["OPTIONS"]["endpoint_url"] == "http://127.0.0.1:9"
    assert storage["OPTIONS"]["region_name"] == "eu-west-3"
    assert storage["OPTIONS"]["location"] == alias


def test_static_files_stay_with_whitenoise_under_s3(tmp_path):
    env = hub_env(tmp_path, HUB_S3_BUCKET="wharf-blobs")
    storages = settings_values(env, "STORAGES")["STORAGES"]
    assert storages["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


S3_ROUND_TRIP = """
import json
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import storages
storage = storages[ALIAS]
report = {"class": type(storage).__module__ + "." + type(storage).__name__}
name = storage.save("sha256/ab/abcdef", ContentFile(b"layer bytes"))
report["name"] = name
report["exists"] = storage.exists(name)
with storage.open(name) as handle:
    report["read"] = handle.read().decode()
report["url"] = storage.url(name)
storage.delete(name)
report["exists_after_delete"] = storage.exists(name)
print(json.dumps(report))
"""


@pytest.fixture
def s3_round_trip(tmp_path, moto_endpoint, bucket):
    """Save, open, presign and delete one object through django-storages, as hub.settings configures it."""

    def run(alias: str) -> dict:
        env = s3_env(tmp_path, moto_endpoint, bucket)
        output = run_django(env, f"ALIAS = {alias!r}\n" + S3_ROUND_TRIP).stdout
        return json.loads(output.strip().splitlines()[-1])

    return run


@pytest.mark.parametrize("alias", BYTE_ALIASES)
def test_s3_storage_saves_opens_and_deletes(s3_round_trip, alias):
    report = s3_round_trip(alias)
    assert report["class"] == "storages.backends.s3.S3Storage"
    assert report["name"] == "sha256/ab/abcdef"
    assert report["exists"] is True
    assert report["read"] == "layer bytes"
    assert report["exists_after_delete"] is False


def test_s3_object_lands_in_the_bucket_under_the_alias_prefix(tmp_path, moto_endpoint, bucket):
    env = s3_env(tmp_path, moto_endpoint, bucket)
    run_django(env, (
        "from django.core.files.base import ContentFile\n"
        "from django.core.files.storage import storages\n"
        "storages['blobs'].save('sha256/cd/cdef', ContentFile(b'x'))\n"
    ))
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="wharf-test", aws_secret_access_key="wharf-test-secret")
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["blobs/sha256/cd/cdef"]


def test_s3_presigned_url_is_fetchable_with_a_plain_get(tmp_path, moto_endpoint, bucket):
    env = s3_env(tmp_path, moto_endpoint, bucket)
    output = run_django(env, (
        "from django.core.files.base import ContentFile\n"
        "from django.core.files.storage import storages\n"
        "storage = storages['blobs']\n"
        "print(storage.url(storage.save('sha256/ef/ef01', ContentFile(b'presigned bytes'))))\n"
    )).stdout
    url = output.strip().splitlines()[-1]
    assert url.startswith(f"{moto_endpoint}/{bucket}/blobs/sha256/ef/ef01?")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"presigned bytes"


def test_s3_presigned_url_uses_signature_version_4(tmp_path, moto_endpoint, bucket):
    # AWS refuses SigV2 in every region opened since 2014 and for new buckets elsewhere.
    env = s3_env(tmp_path, moto_endpoint, bucket)
    url = run_django(env, (
        "from django.core.files.storage import storages\n"
        "print(storages['blobs'].url('sha256/ef/ef01'))\n"
    )).stdout.strip().splitlines()[-1]
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert "X-Amz-Expires=600" in url


def test_readyz_is_ready_with_s3_storage(data_dir, moto_endpoint, bucket):
    env = s3_env(data_dir, moto_endpoint, bucket)
    output = run_django(env, (
        "import json\n"
        "from django.test import Client\n"
        "response = Client().get('/readyz')\n"
        "print(json.dumps({'status': response.status_code, 'body': response.json()}))\n"
    )).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["status"] == 200, result
    assert result["body"]["checks"]["storage"] == "ok"


def test_readyz_reports_a_missing_bucket(data_dir, moto_endpoint):
    env = s3_env(data_dir, moto_endpoint, f"absent-{uuid.uuid4().hex[:12]}")
    output = run_django(env, (
        "import json, logging\n"
        "logging.disable(logging.CRITICAL)\n"
        "from django.test import Client\n"
        "response = Client().get('/readyz')\n"
        "print(json.dumps({'status': response.status_code, 'body': response.json()}))\n"
    )).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["status"] == 503
    assert result["body"]["checks"]["storage"].startswith("error:")
