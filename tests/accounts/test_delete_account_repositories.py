"""Deleting an account deletes its repositories the way deleting a repository does."""

import pytest

from accounts.models import Namespace
from accounts.services import user_delete
from repositories.models import Repository
from tests.factories import RepositoryFactory
from webhooks.models import Delivery
from webhooks.services import webhook_create

pytestmark = pytest.mark.django_db


def test_account_deletion_fires_repository_delete_webhooks(alice, django_capture_on_commit_callbacks):
    repository = RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="doomed")
    webhook_create(repository=repository, name="ci", url="https://hooks.example.com/x",
                   events=["repository_delete"])
    with django_capture_on_commit_callbacks():
        user_delete(user=alice)
    assert not Repository.objects.filter(name="doomed").exists()
    assert Delivery.objects.filter(event="repository_delete").count() == 1
