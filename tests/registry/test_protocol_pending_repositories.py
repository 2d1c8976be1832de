"""A repository a registry push creates stays out of sight until its first manifest.

The first upload POST of a push creates the repository (it must exist for the bytes to land). A
push killed right after it leaves a *pending* repository: the owner's dashboard and profile, the
Hub API, search, `docker search` and /v2/_catalog do not show it, its pages answer 404, and the
periodic cleanup removes it once nothing has happened to it for the grace period. The first
manifest makes it an ordinary repository. Repositories created on purpose (web form, Hub API) are
visible from the start, empty or not.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Namespace
from hub.api import issue_api_token
from oci.scopes import parse_scopes
from registry.models import Blob, BlobUpload, RepositoryBlob
from registry.services.gc import cleanup_stale_uploads, repository_cleanup_pending
from registry.tasks import cleanup_stale_uploads_task
from registry.tokens import issue_registry_token
from repositories.models import Collaborator, Repository
from repositories.permissions import Actor
from repositories.services import repository_create, repository_get_or_create_for_push
from tests.registry.helpers import (
    basic,
    bearer,
    pull_push,
    push_blob,
    push_image,
    start_upload,
    token_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def name(alice):
    return f"{alice.username}/halfway"


@pytest.fixture
def killed_push(client, alice, name):
    """alice's push died right after its first upload POST (no PATCH, no PUT, no manifest)."""
    start_upload(client, name, pull_push(client, alice, name))
    return Repository.objects.get(namespace__name=alice.username, name="halfway")


def _signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def _everywhere(client, user, name: str) -> dict[str, bool]:
    """Where `name` shows up for `user`: each listing, page and API that shows repositories."""
    namespace, short = name.split("/")
    browser = _signed_in(user)
    api = {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user)}"}
    catalog = client.get("/v2/_catalog", **bearer(token_for(client, user.username, "registry:catalog:*")))
    assert catalog.status_code == 200
    return {
        "dashboard": name in browser.get("/").content.decode(),
        "profile": f"/r/{name}" in browser.get(f"/u/{namespace}").content.decode(),
        "search page": f"/r/{name}" in browser.get("/search", {"q": short}).content.decode(),
        "repository page": browser.get(f"/r/{name}").status_code == 200,
        "webhooks page": browser.get(f"/r/{name}/webhooks").status_code == 200,
        "hub api list": short in [r["name"] for r in client.get(f"/v2/repositories/{namespace}/", **api)
                                  .json()["results"]],
        "hub api namespace list": short in [r["name"] for r in client.get(
            f"/v2/namespaces/{namespace}/repositories", **api).json()["results"]],
        "hub api detail": client.get(f"/v2/repositories/{namespace}/{short}/", **api).status_code == 200,
        "hub api webhooks": client.get(f"/v2/repositories/{namespace}/{short}/webhooks/", **api).status_code == 200,
        "hub api search": short in [r["repo_name"].split("/")[-1] for r in client.get(
            "/v2/search/repositories/", {"query": short}, **api).json()["results"]],
        "docker search": name in [r["name"] for r in client.get(
            "/v1/search", {"q": short}, HTTP_AUTHORIZATION=basic(user.username)).json()["results"]],
        "catalog": name in catalog.json()["repositories"],
    }


def test_a_killed_push_leaves_no_repository_in_sight(client, alice, name, killed_push):
    assert killed_push.is_pending
    assert _everywhere(client, alice, name) == dict.fromkeys(_everywhere(client, alice, name), False)


def test_the_first_manifest_makes_it_visible_everywhere(client, alice, name, killed_push):
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"))
    assert not Repository.objects.get(pk=killed_push.pk).is_pending
    assert all(_everywhere(client, alice, name).values()), _everywhere(client, alice, name)


def test_a_stranger_does_not_see_it_either(client, alice, charlie, name, killed_push):
    found = _everywhere(client, charlie, name)
    assert not any(found.values()), found


def test_the_owner_pushes_again_after_a_killed_push(client, alice, name, killed_push):
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    push_image(client, name, token, tag="again")
    assert Repository.objects.filter(namespace__name=alice.username, name="halfway").count() == 1
    assert client.get(f"/v2/{name}/tags/list", **bearer(token)).json()["tags"] == ["again"]


def test_a_push_in_progress_keeps_its_rights(client, alice, bob, name, killed_push):
    """Until the manifest, the pusher uploads as before; others get what they got before."""
    owner = pull_push(client, alice, name)
    push_blob(client, name, b"a layer of the resumed push", owner["HTTP_AUTHORIZATION"][7:])
    upload = client.post(f"/v2/{name}/blobs/uploads/", **pull_push(client, bob, name))
    assert upload.status_code in (401, 403)
    assert not BlobUpload.objects.filter(created_by=bob).exists()


@pytest.mark.parametrize("private", [False, True])
def test_registry_tokens_grant_the_same_on_a_pending_repository(alice, bob, charlie, staff, killed_push, private):
    """Pending changes what lists show, never who may pull, push or delete."""
    Repository.objects.filter(pk=killed_push.pk).update(is_private=private)
    Collaborator.objects.create(repository=killed_push, user=bob)
    scope = parse_scopes([f"repository:{killed_push.full_name}:pull,push,delete"])
    actors = [Actor(), *(Actor.for_user(user) for user in (alice, bob, charlie, staff))]

    def grants() -> list:
        return [issue_registry_token(actor=actor, scopes=scope).access for actor in actors]

    while_pending = grants()
    Repository.objects.filter(pk=killed_push.pk).update(is_pending=False)
    assert grants() == while_pending
    assert while_pending[1] == [{"type": "repository", "name": killed_push.full_name,
                                 "actions": ["delete", "pull", "push"]}]


def test_a_failed_manifest_put_leaves_it_pending(client, alice, name, killed_push):
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
    response = client.put(f"/v2/{name}/manifests/latest", data=body,
                          content_type="application/vnd.oci.image.manifest.v1+json", **bearer(token))
    assert response.status_code == 400
    assert Repository.objects.get(pk=killed_push.pk).is_pending


def test_concurrent_first_pushes_share_one_pending_repository(alice, killed_push):
    namespace = Namespace.objects.get(user=alice)
    again = repository_get_or_create_for_push(namespace=namespace, name="halfway", user=alice)
    assert again.pk == killed_push.pk and again.is_pending
    assert Repository.objects.filter(namespace=namespace, name="halfway").count() == 1


def test_creating_it_on_purpose_adopts_the_pending_repository(alice, killed_push):
    """The name stays taken (one row); the one who creates it gets it, visible, with their settings."""
    created = repository_create(namespace=Namespace.objects.get(user=alice), name="halfway", user=alice,
                                is_private=True, description="made on purpose")
    assert created.pk == killed_push.pk
    created.refresh_from_db()
    assert not created.is_pending and created.is_private and created.description == "made on purpose"


def test_the_web_form_adopts_it_too(client, alice, name, killed_push):
    response = _signed_in(alice).post("/repository/create", {
        "namespace": alice.username, "name": "halfway", "visibility": "public", "description": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not Repository.objects.get(pk=killed_push.pk).is_pending


def test_the_hub_api_create_adopts_it_too(client, alice, name, killed_push):
    response = client.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "halfway"},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {issue_api_token(user=alice)}")
    assert response.status_code == 201, response.content
    assert not Repository.objects.get(pk=killed_push.pk).is_pending


def test_a_repository_created_on_purpose_is_visible_while_empty(client, alice):
    repository_create(namespace=Namespace.objects.get(user=alice), name="empty", user=alice)
    found = _everywhere(client, alice, f"{alice.username}/empty")
    assert all(found.values()), found


# --- cleanup ----------------------------------------------------------------------------------------


def _age(repository, hours: float) -> None:
    Repository.objects.filter(pk=repository.pk).update(created_at=timezone.now() - timedelta(hours=hours))


def test_cleanup_removes_a_pending_repository_past_the_grace_period(client, alice, name, killed_push, settings):
    push_blob(client, name, b"bytes of a killed push", pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:])
    BlobUpload.objects.all().delete()
    long_ago = timezone.now() - timedelta(hours=settings.REGISTRY_STALE_UPLOAD_HOURS + 1)
    Blob.objects.update(last_touched_at=long_ago)
    RepositoryBlob.objects.update(created_at=long_ago)
    _age(killed_push, settings.REGISTRY_STALE_UPLOAD_HOURS + 1)
    assert repository_cleanup_pending(older_than=timedelta(hours=settings.REGISTRY_STALE_UPLOAD_HOURS)) == 1
    assert not Repository.objects.filter(pk=killed_push.pk).exists()
    assert not RepositoryBlob.objects.exists() and not Blob.objects.exists()


def test_cleanup_spares_a_recent_pending_repository(killed_push):
    BlobUpload.objects.all().delete()
    assert repository_cleanup_pending(older_than=timedelta(hours=1)) == 0
    assert Repository.objects.filter(pk=killed_push.pk).exists()


def test_cleanup_spares_a_pending_repository_with_an_upload_in_progress(killed_push):
    _age(killed_push, 48)
    assert BlobUpload.objects.filter(repository=killed_push).exists()
    assert repository_cleanup_pending(older_than=timedelta(hours=1)) == 0
    assert Repository.objects.filter(pk=killed_push.pk).exists()


@pytest.mark.parametrize("recent", ["link", "touch"])
def test_cleanup_spares_a_pending_repository_whose_blobs_were_used_lately(client, alice, name, killed_push, recent):
    """A push resuming after a long pause checks and uploads its blobs, then puts its manifest."""
    push_blob(client, name, b"bytes of a resumed push", pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:])
    BlobUpload.objects.all().delete()
    long_ago = timezone.now() - timedelta(hours=48)
    _age(killed_push, 48)
    if recent == "link":
        Blob.objects.update(last_touched_at=long_ago)
    else:
        RepositoryBlob.objects.update(created_at=long_ago)
    assert repository_cleanup_pending(older_than=timedelta(hours=1)) == 0
    assert Repository.objects.filter(pk=killed_push.pk).exists()


def test_cleanup_spares_old_empty_repositories_created_on_purpose(alice):
    empty = repository_create(namespace=Namespace.objects.get(user=alice), name="empty", user=alice)
    _age(empty, 48)
    assert repository_cleanup_pending(older_than=timedelta(hours=1)) == 0
    assert Repository.objects.filter(pk=empty.pk).exists()


def test_the_hourly_upload_cleanup_task_removes_abandoned_pushes(killed_push, settings):
    """The beat's stale-upload sweep also removes what those uploads' pushes left: no new schedule."""
    BlobUpload.objects.update(updated_at=timezone.now() - timedelta(hours=settings.REGISTRY_STALE_UPLOAD_HOURS + 1))
    _age(killed_push, settings.REGISTRY_STALE_UPLOAD_HOURS + 1)
    cleanup_stale_uploads_task()
    assert not Repository.objects.filter(pk=killed_push.pk).exists()
    assert cleanup_stale_uploads(older_than=timedelta(0)) == 0


def test_a_killed_push_of_an_official_image_is_not_explored(client, staff):
    start_upload(client, "halfofficial", pull_push(client, staff, "halfofficial"))
    assert Repository.objects.get(name="halfofficial").is_pending
    for page in ("/explore", "/"):
        assert "halfofficial" not in Client().get(page).content.decode()
    push_image(client, "halfofficial", token_for(client, staff.username, "repository:halfofficial:pull,push"))
    assert "halfofficial" in Client().get("/explore").content.decode()


def test_a_pending_repository_does_not_keep_its_organization_alive(client, alice):
    """The owner cannot see (nor delete) a killed push's repository: it goes with the organization."""
    from accounts.services import organization_delete
    from registry.blobstore import blob_store
    from tests.factories import make_organization

    organization = make_organization(alice)
    name = f"{organization.name}/halfway"
    token = pull_push(client, alice, name)
    push_blob(client, name, b"bytes only the killed push has", token["HTTP_AUTHORIZATION"][7:])
    start_upload(client, name, token)
    staged = [blob_store.staging.path(upload_id) for upload_id in BlobUpload.objects.values_list("pk", flat=True)]
    assert staged and all(path.exists() for path in staged)
    organization_delete(organization=organization)
    assert not any(path.exists() for path in staged)
    assert not Repository.objects.filter(namespace__name=organization.name).exists()
    assert not BlobUpload.objects.exists() and not RepositoryBlob.objects.exists() and not Blob.objects.exists()
    assert Namespace.objects.get(name=organization.name).is_tombstone


def test_an_organization_with_a_visible_repository_is_still_kept(client, alice):
    from django.core.exceptions import ValidationError

    from accounts.services import organization_delete
    from tests.factories import make_organization

    organization = make_organization(alice)
    done = f"{organization.name}/done"
    push_image(client, done, pull_push(client, alice, done)["HTTP_AUTHORIZATION"][7:])
    start_upload(client, f"{organization.name}/halfway", pull_push(client, alice, f"{organization.name}/halfway"))
    with pytest.raises(ValidationError):
        organization_delete(organization=organization)
    assert Repository.objects.filter(namespace__name=organization.name).count() == 2
