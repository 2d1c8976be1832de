"""A large or chunked upload body streams without holding a database connection (under the gevent
workers nothing else bounds how many slow uploads hold one)."""

import os

import pytest
from django.db import connection

from registry.services import uploads
from repositories.models import Repository
from tests.registry.helpers import digest_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite, pytest.mark.usefixtures("private_staging")]


@pytest.fixture
def upload(alice_namespace):
    repository = Repository.objects.create(namespace=alice_namespace, name="app")
    return uploads.upload_start(repository=repository, user=None)


def watched(chunks: list[bytes], seen: list[bool]):
    """Yield `chunks`, noting before each whether a database connection is open."""
    for chunk in chunks:
        seen.append(connection.connection is not None)
        yield chunk


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_large_body_streams_without_a_database_connection(upload, declared):
    data = os.urandom(3 * uploads.RELEASE_CONNECTION_BYTES // 2)
    chunks, seen = [data[:1000], data[1000:]], []
    connection.ensure_connection()

    uploads.upload_append(upload=upload, body=uploads.Body(len(data) if declared else None, watched(chunks, seen)))

    assert seen == [False, False]
    upload.refresh_from_db()
    assert (upload.size, upload.single_pass_digest) == (len(data), digest_of(data))


def test_a_small_body_keeps_its_connection(upload):
    data = b"x" * 1000
    seen: list[bool] = []
    connection.ensure_connection()

    uploads.upload_append(upload=upload, body=uploads.Body(len(data), watched([data], seen)))

    assert seen == [True]
