"""Storage quotas and size limits (issue 19): usage arithmetic, refusals, organizations, the API, the pages.

The concurrent-push exactness and a real client's refusal are in tests/e2e/test_quotas.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Namespace
from registry.models import Blob, BlobUpload, ManifestBlob
from registry.services import quotas
from registry.services.gc import cleanup_stale_uploads, collect_garbage
from registry.services.uploads import Body, upload_append, upload_start
from repositories.models import Repository
from tests.api.conftest import auth as api_auth
from tests.registry.helpers import (
    assert_error,
    bearer,
    config_blob,
    digest_of,
    image_manifest,
    index_manifest,
    pull_push,
    push_blob,
    push_manifest,
    start_upload,
    token_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

SHARED = b"shared layer " * 400  # 5,200 bytes


def usage(namespace: Namespace) -> int:
    return quotas.namespace_usage(namespace_id=namespace.pk)


def push(client, user, name: str, tag: str, layers: list[bytes]) -> list[bytes]:
    """An image of `layers` and a config of its own, tagged `tag`; the blobs it is made of."""
    headers = pull_push(client, user, name)
    token = headers["HTTP_AUTHORIZATION"][7:]
    config = config_blob(salt=f"{name}:{tag}")
    for blob in [config, *layers]:
        push_blob(client, name, blob, token)
    push_manifest(client, name, tag, image_manifest(config, layers), token)
    return [config, *layers]


def monolithic(client, name: str, data: bytes, headers: dict):
    return client.post(f"/v2/{name}/blobs/uploads/?digest={digest_of(data)}", data=data,
                       content_type="application/octet-stream", **headers)


@pytest.fixture
def ns(alice) -> Namespace:
    return Namespace.objects.get(user=alice)


# --- What counts ----------------------------------------------------------------------------


def test_a_layer_shared_by_two_repositories_counts_once(client, alice, ns):
    one = push(client, alice, f"{alice.username}/one", "v1", [SHARED, b"one " * 100])
    two = push(client, alice, f"{alice.username}/two", "v1", [SHARED, b"two " * 300])
    distinct = {digest_of(blob): len(blob) for blob in one + two}
    assert len(distinct) == 5  # two configs, the shared layer, one layer each
    assert usage(ns) == sum(distinct.values())


def test_an_index_counts_its_childrens_blobs_once(client, alice, ns):
    name = f"{alice.username}/multi"
    token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
    children = []
    for arch in ("amd64", "arm64"):
        config = config_blob(arch=arch)
        push_blob(client, name, config, token)
        push_blob(client, name, SHARED, token)
        body = image_manifest(config, [SHARED])
        push_manifest(client, name, digest_of(body), body, token)
        children.append((body, "linux", arch))
    push_manifest(client, name, "v1", index_manifest(children), token,
                  media_type="application/vnd.oci.image.index.v1+json")
    assert usage(ns) == len(SHARED) + sum(len(config_blob(arch=a)) for a in ("amd64", "arm64"))


def test_uploads_in_progress_and_recent_unreferenced_blobs_count(client, alice, ns, settings):
    settings.REGISTRY_GC_GRACE_HOURS = 24
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    location = start_upload(client, name, headers)
    response = client.patch(location, data=b"x" * 1000, content_type="application/octet-stream", **headers)
    assert response.status_code == 202
    assert usage(ns) == 1000
    orphan = b"never in a manifest " * 10
    push_blob(client, name, orphan, headers["HTTP_AUTHORIZATION"][7:])
    assert usage(ns) == 1000 + len(orphan)
    # Past the grace period garbage collection would take it: it no longer counts.
    past = timezone.now() - timedelta(hours=25)
    Blob.objects.filter(digest=digest_of(orphan)).update(created_at=past, last_touched_at=past)
    assert usage(ns) == 1000


def test_other_namespaces_and_their_manifests_do_not_count(client, alice, bob, ns):
    push(client, bob, f"{bob.username}/theirs", "v1", [SHARED])
    assert usage(ns) == 0
    # alice pushing the same layer: hers too (each namespace pays for what it references).
    blobs = push(client, alice, f"{alice.username}/mine", "v1", [SHARED])
    assert usage(ns) == sum(len(blob) for blob in blobs)


def test_a_push_into_an_organization_counts_against_the_organization(client, alice, organization, ns):
    org_ns = Namespace.objects.get(organization=organization)
    blobs = push(client, alice, f"{organization.name}/service", "v1", [SHARED])
    assert usage(org_ns) == sum(len(blob) for blob in blobs)
    assert usage(ns) == 0
    org_ns.storage_quota_bytes = usage(org_ns) + 10
    org_ns.save()
    headers = pull_push(client, alice, f"{organization.name}/service")
    refused = monolithic(client, f"{organization.name}/service", b"y" * 100, headers)
    error = assert_error(refused, 403, "DENIED")
    assert f"quota exceeded for {organization.name}" in error["message"]
    # alice's own namespace has no quota.
    assert monolithic(client, f"{alice.username}/app", b"y" * 100, pull_push(client, alice, f"{alice.username}/app")
                      ).status_code == 201


# --- Refusals -------------------------------------------------------------------------------


def test_a_push_past_the_quota_is_refused_with_the_usage_and_the_limit(client, alice, ns, settings,
                                                                     private_staging):
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    settings.HUB_NAMESPACE_QUOTA_BYTES = 3 * 1024
    assert monolithic(client, name, b"a" * 2048, headers).status_code == 201
    refused = monolithic(client, name, b"b" * 2048, headers)
    error = assert_error(refused, 403, "DENIED")
    assert error["message"] == (f"storage quota exceeded for {alice.username}: 2 KiB used of 3 KiB, and this push "
                                "needs 2 KiB more; delete tags or repositories to free space")
    assert error["detail"] == {"namespace": alice.username, "usage_bytes": 2048, "quota_bytes": 3072,
                               "adding_bytes": 2048}
    assert not Blob.objects.filter(digest=digest_of(b"b" * 2048)).exists()
    assert not BlobUpload.objects.exists() and not any(private_staging_files(settings))
    assert usage(ns) == 2048
    # What fits still goes in, up to the byte.
    assert monolithic(client, name, b"c" * 1024, headers).status_code == 201
    assert usage(ns) == 3072
    # Full: even starting an upload is refused.
    assert_error(client.post(f"/v2/{name}/blobs/uploads/", **headers), 403, "DENIED")


def private_staging_files(settings):
    return [p for p in settings.UPLOAD_STAGING_DIR.rglob("*") if p.is_file()]


def test_a_patch_past_the_quota_cancels_the_upload(client, alice, ns, settings):
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    settings.HUB_NAMESPACE_QUOTA_BYTES = 1500
    location = start_upload(client, name, headers)
    assert client.patch(location, data=b"x" * 1000, content_type="application/octet-stream",
                        **headers).status_code == 202
    refused = client.patch(location, data=b"x" * 1000, content_type="application/octet-stream", **headers)
    assert "1000 B used of 1.5 KiB" in assert_error(refused, 403, "DENIED")["message"]
    assert client.get(location, **headers).status_code == 404  # cancelled, its bytes gone
    assert usage(ns) == 0


def test_a_chunked_body_is_stopped_once_it_passes_the_quota(alice, ns, settings):
    """No Content-Length: the room left is checked while the bytes arrive, and by the locked check."""
    settings.HUB_NAMESPACE_QUOTA_BYTES = 10_000
    repository = Repository.objects.create(namespace=ns, name="chunked")
    upload = upload_start(repository=repository, user=alice)
    seen = []

    def chunks():
        for _ in range(20):
            seen.append(1)
            yield b"z" * 1000

    with pytest.raises(quotas.QuotaExceeded):
        upload_append(upload=upload, body=Body(None, chunks()))
    assert len(seen) == 11  # stopped at the chunk that crossed the quota, not at the end of the body
    assert not BlobUpload.objects.filter(pk=upload.pk).exists()


def test_the_locked_check_refuses_what_a_concurrent_push_took_meanwhile(alice, ns, settings):
    """The advisory check passed before another push recorded its bytes: the record is refused."""
    settings.HUB_NAMESPACE_QUOTA_BYTES = 1500
    repository = Repository.objects.create(namespace=ns, name="race")
    first, second = (upload_start(repository=repository, user=alice) for _ in range(2))

    def body_recording_the_other_push():
        yield b"1" * 500
        upload_append(upload=second, body=Body(1000, iter([b"2" * 1000])))  # lands while the first streams
        yield b"1" * 500

    with pytest.raises(quotas.QuotaExceeded):
        upload_append(upload=first, body=Body(1000, body_recording_the_other_push()))
    assert usage(ns) == 1000 and list(BlobUpload.objects.values_list("pk", flat=True)) == [second.pk]


def test_a_mount_past_the_quota_is_refused(client, alice, bob, ns, settings):
    blobs = push(client, bob, f"{bob.username}/source", "v1", [SHARED])
    settings.HUB_NAMESPACE_QUOTA_BYTES = 1000
    name = f"{alice.username}/app"
    headers = bearer(token_for(client, alice.username, f"repository:{name}:pull,push",
                               f"repository:{bob.username}/source:pull"))
    response = client.post(f"/v2/{name}/blobs/uploads/?mount={digest_of(SHARED)}&from={bob.username}/source",
                           **headers)
    assert "quota" in assert_error(response, 403, "DENIED")["message"]
    assert usage(ns) == 0
    settings.HUB_NAMESPACE_QUOTA_BYTES = 10_000
    response = client.post(f"/v2/{name}/blobs/uploads/?mount={digest_of(blobs[1])}&from={bob.username}/source",
                           **headers)
    assert response.status_code == 201 and usage(ns) == len(SHARED)


def test_a_namespaces_own_quota_wins_and_zero_means_none(client, alice, ns, settings):
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    settings.HUB_NAMESPACE_QUOTA_BYTES = 100
    ns.storage_quota_bytes = 0
    ns.save()
    assert monolithic(client, name, b"q" * 1000, headers).status_code == 201
    ns.storage_quota_bytes = 1500
    ns.save()
    assert_error(monolithic(client, name, b"r" * 1000, headers), 403, "DENIED")


# --- Space given back -----------------------------------------------------------------------


def test_tag_deletes_and_garbage_collection_give_the_space_back(client, alice, ns, settings):
    settings.REGISTRY_GC_GRACE_HOURS = 24
    settings.HUB_NAMESPACE_QUOTA_BYTES = 8000
    name = f"{alice.username}/app"
    blobs = push(client, alice, name, "v1", [SHARED])
    assert usage(ns) == sum(len(blob) for blob in blobs)
    headers = pull_push(client, alice, name, "pull,push,delete")
    assert_error(monolithic(client, name, b"n" * 4000, headers), 403, "DENIED")

    assert client.delete(f"/v2/{name}/manifests/v1", **headers).status_code == 202
    # Untagged, the manifest stays until garbage collection takes it; then its blobs are only
    # unreferenced ones, counted until the grace period ends.
    collect_garbage(grace=timedelta(0))
    assert not ManifestBlob.objects.exists()
    assert usage(ns) == 0  # the sweep took the blobs as well (no grace)
    assert monolithic(client, name, b"n" * 4000, headers).status_code == 201


def test_a_deleted_manifests_blobs_stop_counting_when_the_grace_period_ends(client, alice, ns, settings):
    settings.REGISTRY_GC_GRACE_HOURS = 1
    name = f"{alice.username}/app"
    blobs = push(client, alice, name, "v1", [SHARED])
    config = blobs[0]
    manifest = image_manifest(config, [SHARED])
    headers = pull_push(client, alice, name, "pull,push,delete")
    assert client.delete(f"/v2/{name}/manifests/{digest_of(manifest)}", **headers).status_code == 202
    assert usage(ns) == len(SHARED) + len(config)  # linked, unreferenced, within the grace period
    past = timezone.now() - timedelta(hours=2)
    Blob.objects.update(created_at=past, last_touched_at=past)
    assert usage(ns) == 0


# --- Size and time limits -------------------------------------------------------------------


def test_a_blob_past_the_size_limit_is_refused_and_its_upload_removed(client, alice, settings, private_staging):
    settings.HUB_MAX_BLOB_BYTES = 1024
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    error = assert_error(monolithic(client, name, b"s" * 2000, headers), 400, "SIZE_INVALID")
    assert error["message"] == "blob too large: 2 KiB or more, the limit is 1 KiB; the upload was cancelled"
    location = start_upload(client, name, headers)
    assert client.patch(location, data=b"s" * 1000, content_type="application/octet-stream",
                        **headers).status_code == 202
    refused = client.patch(location, data=b"s" * 100, content_type="application/octet-stream", **headers)
    assert "the limit is 1 KiB" in assert_error(refused, 400, "SIZE_INVALID")["message"]
    assert client.get(location, **headers).status_code == 404
    assert not BlobUpload.objects.exists() and not private_staging_files(settings)
    assert monolithic(client, name, b"s" * 1024, headers).status_code == 201


def test_a_chunked_body_past_the_size_limit_is_stopped(alice, settings):
    settings.HUB_MAX_BLOB_BYTES = 2500
    repository = Repository.objects.create(namespace=Namespace.objects.get(user=alice), name="big")
    upload = upload_start(repository=repository, user=alice)
    with pytest.raises(quotas.BlobTooLarge):
        upload_append(upload=upload, body=Body(None, iter([b"b" * 1000] * 5)))
    assert not BlobUpload.objects.filter(pk=upload.pk).exists()


def test_an_upload_past_the_time_limit_is_cancelled(client, alice, settings, private_staging):
    settings.HUB_MAX_UPLOAD_SECONDS = 60
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    location = start_upload(client, name, headers)
    assert client.patch(location, data=b"t" * 100, content_type="application/octet-stream",
                        **headers).status_code == 202
    BlobUpload.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    refused = client.put(f"{location}?digest={digest_of(b't' * 200)}", data=b"t" * 100,
                         content_type="application/octet-stream", **headers)
    error = assert_error(refused, 400, "BLOB_UPLOAD_INVALID")
    assert error["message"] == "upload took too long: the limit is 60 seconds; the upload was cancelled"
    assert not BlobUpload.objects.exists() and not private_staging_files(settings)


def test_the_stale_upload_sweep_removes_uploads_past_the_time_limit(client, alice, settings):
    settings.HUB_MAX_UPLOAD_SECONDS = 60
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    old, recent = start_upload(client, name, headers), start_upload(client, name, headers)
    BlobUpload.objects.filter(pk=old.rsplit("/", 1)[1]).update(created_at=timezone.now() - timedelta(seconds=61))
    assert cleanup_stale_uploads() == 1
    assert [str(pk) for pk in BlobUpload.objects.values_list("pk", flat=True)] == [recent.rsplit("/", 1)[1]]


# --- API and pages --------------------------------------------------------------------------


def storage_url(name: str) -> str:
    return f"/v2/namespaces/{name}/storage"


def test_the_api_shows_usage_and_staff_set_the_quota(client, alice, staff, ns, settings):
    from rest_framework.test import APIClient

    settings.HUB_NAMESPACE_QUOTA_BYTES = 5 * 1024**3
    blobs = push(client, alice, f"{alice.username}/app", "v1", [SHARED])
    api = APIClient()
    expected = {"namespace": alice.username, "quota_bytes": None, "usage_bytes": sum(len(b) for b in blobs),
                "default_quota_bytes": 5 * 1024**3}
    assert api.get(storage_url(alice.username), **api_auth(alice)).json() == expected
    changed = api.patch(storage_url(alice.username), {"quota_bytes": 10**9}, format="json", **api_auth(staff))
    assert changed.status_code == 200 and changed.json() == {**expected, "quota_bytes": 10**9}
    assert Namespace.objects.get(pk=ns.pk).storage_quota_bytes == 10**9
    assert api.patch(storage_url(alice.username), {"quota_bytes": -1}, format="json",
                     **api_auth(staff)).status_code == 400


def test_the_api_is_for_the_account_its_owners_and_staff(alice, bob, staff, organization):
    from rest_framework.test import APIClient

    api = APIClient()
    assert api.get(storage_url(organization.name), **api_auth(alice)).status_code == 200  # an owner
    refused = api.patch(storage_url(alice.username), {"quota_bytes": 0}, format="json", **api_auth(alice))
    assert refused.status_code == 403
    for name in (alice.username, organization.name, "nobody-here"):
        assert api.get(storage_url(name), **api_auth(bob)).status_code == 404
        assert api.patch(storage_url(name), {"quota_bytes": 5}, format="json", **api_auth(bob)).status_code == 404
    assert api.get(storage_url(alice.username)).status_code == 401


def test_the_pages_show_the_storage_to_the_account_and_staff_only(client, alice, bob, staff, settings):
    settings.HUB_NAMESPACE_QUOTA_BYTES = 5 * 1024**3
    push(client, alice, f"{alice.username}/app", "v1", [b"p" * (1536 * 1024)])
    line = "Storage: <strong>1.5 MiB</strong> of 5 GiB"
    for page in (f"/u/{alice.username}", f"/r/{alice.username}/app"):
        client.force_login(alice)
        assert line in client.get(page).content.decode()
        client.force_login(staff)
        assert line in client.get(page).content.decode()
        client.force_login(bob)
        assert "Storage:" not in client.get(page).content.decode()
        client.logout()
        assert "Storage:" not in client.get(page).content.decode()


# --- The 80% warning ------------------------------------------------------------------------


@pytest.fixture
def sent_at_once(monkeypatch):
    """The warning task runs in the test (no broker), when the push's transaction commits."""
    from registry.tasks import send_quota_warning_task

    monkeypatch.setattr(send_quota_warning_task, "delay", lambda namespace_id: send_quota_warning_task(namespace_id))


def test_owners_get_one_email_past_80_percent_and_another_after_going_back(
        client, alice, ns, settings, mailoutbox, sent_at_once, django_capture_on_commit_callbacks):
    settings.HUB_NAMESPACE_QUOTA_BYTES = 10_000
    name = f"{alice.username}/app"
    headers = pull_push(client, alice, name)
    with django_capture_on_commit_callbacks(execute=True):
        assert monolithic(client, name, b"1" * 7000, headers).status_code == 201
    assert mailoutbox == []  # 70%
    with django_capture_on_commit_callbacks(execute=True):
        assert monolithic(client, name, b"2" * 1500, headers).status_code == 201
        assert monolithic(client, name, b"3" * 500, headers).status_code == 201
    [email] = mailoutbox
    assert email.to == [alice.email]
    assert email.subject == f"[Wharf] {alice.username} has used 90% of its storage"
    assert "8.8 KiB of its 9.8 KiB quota (90%)" in email.body
    # Back under 80% (a blob unlinked), a push re-arms the warning.
    headers = pull_push(client, alice, name, "pull,push,delete")  # delete: granted once the repository exists
    assert client.delete(f"/v2/{name}/blobs/{digest_of(b'1' * 7000)}", **headers).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        assert monolithic(client, name, b"4" * 100, headers).status_code == 201
    assert Namespace.objects.get(pk=ns.pk).storage_warned_at is None
    with django_capture_on_commit_callbacks(execute=True):
        assert monolithic(client, name, b"5" * 6000, headers).status_code == 201
    assert len(mailoutbox) == 2


def test_an_organizations_owners_are_warned_and_see_it_on_the_dashboard(
        client, alice, bob, organization, settings, mailoutbox, sent_at_once, django_capture_on_commit_callbacks):
    from accounts.models import Team

    team = Team.objects.create(organization=organization, name="devs")
    team.members.add(bob)
    org_ns = Namespace.objects.get(organization=organization)
    org_ns.storage_quota_bytes = 1000
    org_ns.save()
    name = f"{organization.name}/service"
    with django_capture_on_commit_callbacks(execute=True):
        assert monolithic(client, name, b"o" * 900, pull_push(client, alice, name)).status_code == 201
    [email] = mailoutbox
    assert email.to == [alice.email]  # the owners, not every member
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert f"<strong>{organization.name}</strong> has used 90% of its storage quota: 900 B of 1000 B" in page
    client.force_login(bob)
    assert "of its storage quota" not in client.get("/").content.decode()
