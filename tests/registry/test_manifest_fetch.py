"""The manifest GET's hand-written query makes the same Manifest the ORM makes: every field, no defaults."""

import pytest

from registry.models import Manifest, Tag
from registry.services.manifests import manifest_fetch
from tests.registry.helpers import push_image, token_for

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def field_values(manifest: Manifest) -> dict:
    values = {field.attname: getattr(manifest, field.attname) for field in Manifest._meta.concrete_fields}
    values["content"] = bytes(values["content"])
    return values


@pytest.fixture
def pushed(client, alice) -> Manifest:
    name = f"{alice.username}/app"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"), tag="v1")
    manifest = Tag.objects.get(repository__name="app", name="v1").manifest
    Manifest.objects.filter(pk=manifest.pk).update(annotations={"org.example": "kept"}, artifact_type="x/y")
    manifest.refresh_from_db()
    return manifest


def test_by_tag_every_field_is_the_rows(alice, pushed):
    fetched = manifest_fetch(namespace=alice.username, name="app", reference="v1")
    assert field_values(fetched) == field_values(pushed)
    assert fetched.annotations == {"org.example": "kept"} and fetched.size > 0 and fetched.pushed_by_id == alice.pk


def test_by_digest_every_field_is_the_rows(alice, pushed):
    fetched = manifest_fetch(namespace=alice.username, name="app", reference=pushed.digest)
    assert field_values(fetched) == field_values(pushed)
    assert isinstance(fetched.content, bytes) and not fetched._state.adding


def test_another_repository_finds_nothing(alice, bob, pushed):
    assert manifest_fetch(namespace=bob.username, name="app", reference="v1") is None


def test_what_serving_does_not_read_is_deferred_not_defaulted(alice, pushed):
    fetched = manifest_fetch(namespace=alice.username, name="app", reference="v1")
    assert fetched.get_deferred_fields() == {"artifact_type", "size", "config_digest", "annotations", "total_size",
                                             "created_at", "pushed_by_id"}
    assert fetched.artifact_type == "x/y"  # loaded on first access
