"""Fixtures most registry protocol tests share: alice's repository, a pull+push token for it and a blob
pushed to it; a staging folder of the test's own; a new bucket in moto's S3 emulator (`moto_endpoint`,
tests/conftest.py)."""

import uuid

import boto3
import pytest

from tests.registry.helpers import S3_CREDENTIALS, bearer, pull_push, push_blob


@pytest.fixture
def name(alice):
    return f"{alice.username}/app"


@pytest.fixture
def token(client, alice, name):
    return pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]


@pytest.fixture
def auth(token):
    return bearer(token)


@pytest.fixture
def data():
    """A small blob's bytes, new for each test."""
    return f"blob content {uuid.uuid4()} ".encode() * 40


@pytest.fixture
def digest(client, name, token, data):
    """`data` pushed to `name` as a blob: its digest."""
    return push_blob(client, name, data, token)


@pytest.fixture
def private_staging(settings, tmp_path):
    """A staging folder of this test's own, so "nothing is left behind" can be checked."""
    settings.UPLOAD_STAGING_DIR = tmp_path


@pytest.fixture
def bucket(moto_endpoint) -> str:
    """A new, empty bucket in moto."""
    name = f"wharf-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **S3_CREDENTIALS).create_bucket(Bucket=name)
    return name
