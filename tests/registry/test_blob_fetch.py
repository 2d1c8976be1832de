"""Blob GET and HEAD find the blob and its repository in one hand-written query (registry.selectors.linked_blob),
and still answer exactly as before: unknown repository, unknown or unlinked blob, bad digest, privacy."""


import pytest

from registry.models import Blob, RepositoryBlob
from registry.selectors import linked_blob
from repositories.models import Repository
from tests.registry.helpers import assert_error, digest_of, pull_push, push_image, token_for

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def epoch_in_memory(settings):
    """The revocation epoch read once (a cache query on the embedded setup), not every 2 s."""
    from accounts.revocation import revocation_epoch

    settings.REVOCATION_REFRESH_SECONDS = 3600
    revocation_epoch()


def test_the_selector_builds_the_whole_row(alice, digest):
    found = linked_blob(namespace=alice.username, name="app", digest=digest)
    row = Blob.objects.get(digest=digest)
    assert [getattr(found, f.attname) for f in Blob._meta.concrete_fields] == \
        [getattr(row, f.attname) for f in Blob._meta.concrete_fields]
    assert not found.get_deferred_fields()


def test_the_selector_finds_nothing_elsewhere(alice, bob, digest):
    assert linked_blob(namespace=alice.username, name="other", digest=digest) is None
    assert linked_blob(namespace=bob.username, name="app", digest=digest) is None
    assert linked_blob(namespace=alice.username, name="app", digest=digest_of(b"never")) is None


@pytest.mark.parametrize("method", ["get", "head"])
def test_get_and_head_cost_one_query(client, name, auth, data, digest, method, epoch_in_memory,
                                     django_assert_num_queries):
    getattr(client, method)(f"/v2/{name}/blobs/{digest}", **auth)  # the token verified and remembered
    with django_assert_num_queries(1):
        response = getattr(client, method)(f"/v2/{name}/blobs/{digest}", **auth)
    assert response.status_code == 200
    assert response["Docker-Content-Digest"] == digest and response["Content-Length"] == str(len(data))
    if method == "get":
        assert b"".join(response.streaming_content) == data


@pytest.mark.parametrize("method", ["get", "head"])
def test_an_unlinked_blob_is_unknown_at_once(client, name, auth, digest, method):
    RepositoryBlob.objects.filter(blob__digest=digest).delete()
    assert_error(getattr(client, method)(f"/v2/{name}/blobs/{digest}", **auth), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_blob_of_another_repository_of_the_same_owner_is_unknown(client, alice, name, digest, method):
    other = f"{alice.username}/bb"
    other_auth = pull_push(client, alice, other)
    push_image(client, other, other_auth["HTTP_AUTHORIZATION"][7:])
    assert_error(getattr(client, method)(f"/v2/{other}/blobs/{digest}", **other_auth), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_missing_repository_the_token_may_create_is_name_unknown(client, alice, digest, method):
    missing = f"{alice.username}/never-pushed"
    auth = pull_push(client, alice, missing)  # the owner may create it: pull and push granted
    assert_error(getattr(client, method)(f"/v2/{missing}/blobs/{digest}", **auth), 404, "NAME_UNKNOWN")
    # A bad digest on a missing repository: the repository is named first, as before.
    assert_error(getattr(client, method)(f"/v2/{missing}/blobs/sha256:abc", **auth), 404, "NAME_UNKNOWN")


def test_a_bad_digest_on_an_existing_repository_is_digest_invalid(client, name, auth, digest):
    assert_error(client.get(f"/v2/{name}/blobs/sha256:abc", **auth), 400, "DIGEST_INVALID")


def test_a_private_blob_looks_missing_to_strangers(client, alice, bob, name, digest):
    Repository.objects.filter(namespace__name=alice.username, name="app").update(is_private=True)
    missing = f"/v2/{alice.username}/never-pushed/blobs/{digest}"
    present = f"/v2/{name}/blobs/{digest}"
    for who in (None, bob):
        for path in (present, missing):
            scope = f"repository:{path.split('/blobs/')[0][4:]}:pull"
            token = token_for(client, who.username if who else None, scope)
            response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
            assert_error(response, 401, "UNAUTHORIZED")
        answers = []
        for path in (present, missing):
            scope = f"repository:{path.split('/blobs/')[0][4:]}:pull"
            token = token_for(client, who.username if who else None, scope)
            answers.append(client.head(path, HTTP_AUTHORIZATION=f"Bearer {token}").status_code)
        assert answers[0] == answers[1]
