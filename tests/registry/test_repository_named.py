"""registry.selectors.repository_named: the registry's repository lookup, one hand-written query."""

import datetime as dt

import pytest
from django.utils import timezone

from registry.selectors import repository_named
from tests.factories import RepositoryFactory

pytestmark = pytest.mark.django_db


def test_finds_the_repository_with_its_namespace_in_one_query(django_assert_num_queries):
    pushed = timezone.now() - dt.timedelta(hours=3)
    stored = RepositoryFactory(is_private=True, immutable_tags=True, immutable_tags_rules=["v.*"],
                               last_pushed_at=pushed, pull_count=12)
    with django_assert_num_queries(1):
        found = repository_named(namespace=stored.namespace.name, name=stored.name)
        assert found.namespace.name == stored.namespace.name and found.namespace.kind == stored.namespace.kind
    assert (found.pk, found.is_private, found.immutable_tags, found.immutable_tags_rules) == (
        stored.pk, True, True, ["v.*"])
    assert found.last_pushed_at == pushed and found.pull_count == 12


def test_none_for_a_name_in_another_namespace_or_unknown():
    first, second = RepositoryFactory(), RepositoryFactory()
    assert repository_named(namespace=first.namespace.name, name=second.name) is None
    assert repository_named(namespace=first.namespace.name, name="no-such-repository") is None
    assert repository_named(namespace="no-such-namespace", name=first.name) is None


def test_a_found_repository_saves_like_an_orm_one():
    stored = RepositoryFactory(description="before")
    found = repository_named(namespace=stored.namespace.name, name=stored.name)
    found.description = "after"
    found.save(update_fields=["description"])
    stored.refresh_from_db()
    assert stored.description == "after"
