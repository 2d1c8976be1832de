"""The admin shows repositories, tags, manifests and builds but changes none of them: each has its own
service (blobs released, audit log written, content verified), which the admin would bypass."""

import pytest
from django.urls import reverse

from builds.models import Build
from registry.models import Manifest, Tag
from tests.factories import RepositoryFactory

MODELS = [("repositories", "repository"), ("registry", "tag"), ("registry", "manifest"), ("builds", "build")]


@pytest.fixture
def superuser_client(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


@pytest.fixture
def pushed(staff):
    repository = RepositoryFactory(name="shown")
    manifest = Manifest.objects.create(repository=repository, digest="sha256:" + "a" * 64, content=b"{}", size=2,
                                       media_type="application/vnd.oci.image.manifest.v1+json")
    tag = Tag.objects.create(repository=repository, name="v1", manifest=manifest)
    build = Build.objects.create(repository=repository, source_url="https://git.example/app.git", ref="main",
                                 tag="latest")
    return {"repository": repository, "tag": tag, "manifest": manifest, "build": build}


@pytest.mark.django_db
@pytest.mark.parametrize(("app", "model"), MODELS)
def test_listed_and_shown(superuser_client, pushed, app, model):
    listing = superuser_client.get(reverse(f"admin:{app}_{model}_changelist"))
    row = pushed[model]
    change_url = reverse(f"admin:{app}_{model}_change", args=[row.pk])
    assert listing.status_code == 200 and change_url in listing.content.decode()
    page = superuser_client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()  # a view, no Save button


@pytest.mark.django_db
@pytest.mark.parametrize(("app", "model"), MODELS)
def test_neither_added_changed_nor_deleted(superuser_client, pushed, app, model):
    row = pushed[model]
    assert superuser_client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    assert superuser_client.post(reverse(f"admin:{app}_{model}_delete", args=[row.pk]),
                                 {"post": "yes"}).status_code == 403
    changed = superuser_client.post(reverse(f"admin:{app}_{model}_change", args=[row.pk]), {"name": "renamed"})
    assert changed.status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
def test_the_repository_search_finds_by_namespace(superuser_client, pushed):
    repository = pushed["repository"]
    found = superuser_client.get(reverse("admin:repositories_repository_changelist"),
                                 {"q": repository.namespace.name})
    assert reverse("admin:repositories_repository_change", args=[repository.pk]) in found.content.decode()
    missed = superuser_client.get(reverse("admin:repositories_repository_changelist"), {"q": "no-such-namespace"})
    assert reverse("admin:repositories_repository_change", args=[repository.pk]) not in missed.content.decode()
