"""Garbage collection: mark from tags through indexes and referrers, sweep the rest after a grace period."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.blobstore import blob_store
from registry.models import Blob, BlobUpload, Manifest, Tag
from registry.services import gc
from registry.services.gc import cleanup_stale_uploads, collect_garbage
from tests.registry.helpers import (
    artifact_manifest,
    config_blob,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
    pull_push,
    push_blob,
    push_image,
    push_manifest,
    start_upload,
    token_for,
)

pytestmark = [pytest.mark.django_db]

NOW = timedelta(0)


@pytest.fixture
def auth(client, alice, name):
    return pull_push(client, alice, name, "pull,push")


@pytest.fixture
def token(auth):
    return auth["HTTP_AUTHORIZATION"][7:]


def _exists(data: bytes) -> bool:
    digest = digest_of(data)
    return Blob.objects.filter(digest=digest).exists() and blob_store.exists(digest)


def _gone(data: bytes) -> bool:
    digest = digest_of(data)
    return not Blob.objects.filter(digest=digest).exists() and not blob_store.exists(digest)


def _manifest_exists(body: bytes) -> bool:
    return Manifest.objects.filter(digest=digest_of(body)).exists()


def _age_everything(days: int = 2) -> None:
    old = timezone.now() - timedelta(days=days)
    Blob.objects.update(created_at=old, last_touched_at=old)
    Manifest.objects.update(created_at=old)


def test_tagged_image_survives(client, name, token):
    body, blobs = push_image(client, name, token)
    collect_garbage(grace=NOW)
    assert _manifest_exists(body)
    assert all(_exists(b) for b in blobs)


def test_untagged_manifest_and_its_blobs_are_deleted(client, name, token):
    body, blobs = push_image(client, name, token, tag="doomed")
    Tag.objects.filter(name="doomed").delete()
    report = collect_garbage(grace=NOW)
    assert not _manifest_exists(body)
    assert all(_gone(b) for b in blobs)
    assert report.manifests_deleted == 1
    assert report.blobs_deleted == 2
    assert report.bytes_freed == sum(len(b) for b in blobs)


def test_unreferenced_blob_is_deleted(client, name, token):
    data = f"orphan {name}".encode()
    push_blob(client, name, data, token)
    collect_garbage(grace=NOW)
    assert _gone(data)


def test_blob_shared_with_a_tagged_image_survives(client, name, token):
    config_a, config_b, shared = config_blob(salt="a" + name), config_blob(salt="b" + name), f"shared {name}".encode()
    for blob in (config_a, config_b, shared):
        push_blob(client, name, blob, token)
    kept = image_manifest(config_a, [shared])
    dropped = image_manifest(config_b, [shared])
    push_manifest(client, name, "kept", kept, token)
    push_manifest(client, name, digest_of(dropped), dropped, token)
    collect_garbage(grace=NOW)
    assert _manifest_exists(kept) and not _manifest_exists(dropped)
    assert _exists(shared) and _exists(config_a)
    assert _gone(config_b)


def _push_index(client, name, token, tag="multi"):
    children, blobs = [], []
    for arch in ("amd64", "arm64"):
        body, child_blobs = push_image(client, name, token, tag=f"tmp-{arch}", arch=arch)
        Tag.objects.filter(name=f"tmp-{arch}").delete()  # children reachable only through the index
        children.append((body, "linux", arch))
        blobs += child_blobs
    index = index_manifest(children)
    push_manifest(client, name, tag, index, token, "application/vnd.oci.image.index.v1+json")
    return index, [c[0] for c in children], blobs


def test_index_children_survive(client, name, token):
    index, children, blobs = _push_index(client, name, token)
    collect_garbage(grace=NOW)
    assert _manifest_exists(index)
    assert all(_manifest_exists(c) for c in children)
    assert all(_exists(b) for b in blobs)


def test_deleting_the_index_tag_releases_children_and_blobs(client, name, token):
    index, children, blobs = _push_index(client, name, token)
    # Another tagged image shares the amd64 child's layer.
    shared_layer = blobs[1]
    other_config = config_blob(salt=f"other {name}")
    push_blob(client, name, other_config, token)
    other = image_manifest(other_config, [shared_layer])
    push_manifest(client, name, "other", other, token)
    Tag.objects.filter(name="multi").delete()
    collect_garbage(grace=NOW)
    assert not _manifest_exists(index)
    assert not any(_manifest_exists(c) for c in children)
    assert _exists(shared_layer) and _exists(other_config)
    assert all(_gone(b) for b in blobs if b != shared_layer)


def test_referrers_and_signatures_of_a_reachable_manifest_survive(client, name, token):
    body, _ = push_image(client, name, token)
    push_blob(client, name, b"{}", token)
    sbom_payload = f"sbom {name}".encode()
    push_blob(client, name, sbom_payload, token)
    sbom = artifact_manifest(artifact_type="application/spdx+json", subject=descriptor(body), layers=[sbom_payload])
    push_manifest(client, name, digest_of(sbom), sbom, token)
    signature = artifact_manifest(artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json",
                                  annotations={"for": name})
    push_manifest(client, name, f"sha256-{digest_of(body)[7:]}.sig", signature, token)
    collect_garbage(grace=NOW)
    assert _manifest_exists(sbom) and _manifest_exists(signature)
    assert _exists(sbom_payload) and _exists(b"{}")


def test_referrers_of_an_unreachable_manifest_go_with_it(client, name, token):
    body, _ = push_image(client, name, token, tag="gone")
    push_blob(client, name, b"{}", token)
    sbom = artifact_manifest(artifact_type="application/spdx+json", subject=descriptor(body))
    push_manifest(client, name, digest_of(sbom), sbom, token)
    Tag.objects.filter(name="gone").delete()
    collect_garbage(grace=NOW)
    assert not _manifest_exists(body) and not _manifest_exists(sbom)


def test_grace_period_spares_recent_blobs_and_manifests(client, name, token):
    body, blobs = push_image(client, name, token, tag="recent")
    Tag.objects.all().delete()
    orphan = f"recent orphan {name}".encode()
    push_blob(client, name, orphan, token)
    report = collect_garbage(grace=timedelta(hours=1))
    assert _manifest_exists(body)
    assert all(_exists(b) for b in [*blobs, orphan])
    assert report.blobs_deleted == 0 and report.manifests_deleted == 0


def test_blob_headed_during_grace_survives(client, name, token, auth):
    kept, dropped = f"headed {name}".encode(), f"ignored {name}".encode()
    push_blob(client, name, kept, token)
    push_blob(client, name, dropped, token)
    _age_everything()
    assert client.head(f"/v2/{name}/blobs/{digest_of(kept)}", **auth).status_code == 200
    collect_garbage(grace=timedelta(days=1))
    assert _exists(kept)
    assert _gone(dropped)


def test_blob_mounted_during_grace_survives(client, alice, name, token):
    data = f"mounted {name}".encode()
    push_blob(client, name, data, token)
    _age_everything()
    target = f"{alice.username}/mounted"
    both = token_for(client, alice.username, f"repository:{target}:pull,push", f"repository:{name}:pull")
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest_of(data)}&from={name}",
                           HTTP_AUTHORIZATION=f"Bearer {both}")
    assert response.status_code == 201
    collect_garbage(grace=timedelta(days=1))
    assert _exists(data)


def test_push_racing_the_blob_sweep_keeps_its_blob(client, name, token, monkeypatch):
    config, layer = config_blob(salt=f"race {name}"), f"race layer {name}".encode()
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    original = gc.sweep_blob
    pushed = []

    def sweep_after_a_push(blob_id, cutoff, **kwargs):
        if not pushed:  # between mark and sweep, a client pushes a manifest naming the blobs
            pushed.append(push_manifest(client, name, "raced", image_manifest(config, [layer]), token))
        return original(blob_id, cutoff, **kwargs)

    monkeypatch.setattr(gc, "sweep_blob", sweep_after_a_push)
    collect_garbage(grace=NOW)
    assert pushed
    assert _exists(config) and _exists(layer)
    assert client.get(f"/v2/{name}/manifests/raced", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_tagging_an_untagged_manifest_after_the_mark_keeps_it(client, name, token, monkeypatch):
    body, blobs = push_image(client, name, token, tag="later")
    Tag.objects.all().delete()
    original = gc.reachable_manifest_ids

    def mark_then_tag():
        reachable = original()
        push_manifest(client, name, "later", body, token)
        return reachable

    monkeypatch.setattr(gc, "reachable_manifest_ids", mark_then_tag)
    collect_garbage(grace=NOW)
    assert _manifest_exists(body)
    assert all(_exists(b) for b in blobs)


def test_dry_run_deletes_nothing(client, name, token):
    body, blobs = push_image(client, name, token)
    Tag.objects.all().delete()
    out = io.StringIO()
    call_command("gc", "--dry-run", "--grace-hours", "0", stdout=out)
    assert "Would delete 1 manifests" in out.getvalue()
    assert _manifest_exists(body)
    assert all(_exists(b) for b in blobs)


def test_gc_command_deletes(client, name, token):
    body, blobs = push_image(client, name, token)
    Tag.objects.all().delete()
    out = io.StringIO()
    call_command("gc", "--grace-hours", "0", stdout=out)
    assert out.getvalue().startswith("Deleted 1 manifests and 2 blobs")
    assert not _manifest_exists(body)
    assert all(_gone(b) for b in blobs)


def test_blob_whose_file_is_already_gone_is_collected(client, name, token):
    data = f"fileless {name}".encode()
    push_blob(client, name, data, token)
    blob_store.delete(digest_of(data))
    collect_garbage(grace=NOW)
    assert not Blob.objects.filter(digest=digest_of(data)).exists()


# --- stale uploads ----------------------------------------------------------------------------------


def test_cleanup_stale_uploads_removes_old_uploads_and_staged_files(client, name, auth):
    old_location = start_upload(client, name, auth)
    client.patch(old_location, data=b"half an upload", content_type="application/octet-stream", **auth)
    fresh_location = start_upload(client, name, auth)
    old_id, fresh_id = old_location.rsplit("/", 1)[1], fresh_location.rsplit("/", 1)[1]
    BlobUpload.objects.filter(pk=old_id).update(updated_at=timezone.now() - timedelta(days=2))
    assert cleanup_stale_uploads() == 1
    assert not BlobUpload.objects.filter(pk=old_id).exists()
    assert not blob_store.staging.path(old_id).exists()
    assert BlobUpload.objects.filter(pk=fresh_id).exists()
    assert blob_store.staging.path(fresh_id).exists()


def test_cleanup_stale_uploads_with_zero_age_removes_everything(client, name, auth):
    location = start_upload(client, name, auth)
    assert cleanup_stale_uploads(older_than=timedelta(0)) == 1
    assert not blob_store.staging.path(location.rsplit("/", 1)[1]).exists()


def test_gc_leaves_manifest_content_intact(client, name, token, auth):
    body, _ = push_image(client, name, token)
    collect_garbage(grace=NOW)
    response = client.get(f"/v2/{name}/manifests/latest", **auth)
    assert response.content == body
    assert json.loads(body)["schemaVersion"] == 2
