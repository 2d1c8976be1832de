"""RepositorySerializer builds its JSON directly (a page of 100 costs a tenth of DRF's per-field path):
it must say exactly what its field declarations say."""

import json

import pytest
from django.utils import timezone
from rest_framework import serializers

from accounts.models import Namespace
from repositories.permissions import PULL, Actor
from repositories.serializers import RepositorySerializer
from tests.factories import RepositoryFactory

pytestmark = pytest.mark.django_db


def declared(repository, context) -> dict:
    """What DRF makes of the declarations, field by field."""
    return serializers.Serializer.to_representation(RepositorySerializer(context=context), repository)


@pytest.mark.parametrize("values", [
    {},
    {"is_private": True, "is_automated": True, "star_count": 3, "pull_count": 12345678901},
    {"description": "<b>x</b> & ünïcode", "full_description": "# README\n\n" * 50},
])
@pytest.mark.parametrize("pushed", [True, False])
def test_the_built_json_is_what_the_fields_declare(alice, values, pushed):
    repository = RepositoryFactory(namespace=Namespace.objects.get(user=alice), **values,
                                   last_pushed_at=timezone.now() if pushed else None)
    repository.api_collaborator_count, repository.api_has_starred, repository.api_storage_size = 2, True, 4096
    context = {"actor": Actor.for_user(alice), "actions_by_id": {repository.pk: frozenset({PULL})}}
    built = RepositorySerializer(repository, context=context).data
    assert json.dumps(built) == json.dumps(declared(repository, context))
