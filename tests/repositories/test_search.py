"""repositories.search: what matches, in which order, for whom; and, on PostgreSQL, the indexes it uses."""

import pytest
from django.db import connection

from accounts.models import Membership, Namespace
from repositories.models import Collaborator, Repository, TeamPermission
from repositories.permissions import Actor
from repositories.search import search_queryset, search_repositories
from tests.factories import RepositoryFactory, UserFactory, library_namespace, make_organization, team

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="trigram indexes are PostgreSQL's")


def names(queryset) -> list[str]:
    return [repository.display_name for repository in queryset]


def repo(owner, name: str, **kwargs) -> Repository:
    return RepositoryFactory(namespace=Namespace.objects.get(user=owner), name=name, **kwargs)


def test_matches_name_substring(alice):
    repo(alice, "falcon-api")
    repo(alice, "unrelated")
    assert names(search_queryset(actor=Actor(), query="lcon")) == [f"{alice.username}/falcon-api"]


def test_matches_description_case_insensitively(alice):
    repo(alice, "tool", description="A Quokka image")
    assert names(search_queryset(actor=Actor(), query="QUOKKA")) == [f"{alice.username}/tool"]


def test_matches_namespace_name(alice, bob):
    repo(alice, "one")
    repo(bob, "two")
    assert names(search_queryset(actor=Actor(), query=alice.username[2:])) == [f"{alice.username}/one"]


def test_namespace_and_name_query(alice, bob):
    repo(alice, "falcon")
    repo(alice, "falcon-extra")
    repo(bob, "falcon")
    results = names(search_queryset(actor=Actor(), query=f"{alice.username}/falcon"))
    assert results[0] == f"{alice.username}/falcon" and set(results) == {
        f"{alice.username}/falcon", f"{alice.username}/falcon-extra"}


def test_exact_name_first_then_stars_then_pulls(alice, bob):
    repo(alice, "heron-tools", star_count=50, pull_count=1)
    repo(bob, "heron-extra", star_count=5, pull_count=10_000)
    repo(bob, "heron-few", star_count=5, pull_count=3)
    RepositoryFactory(namespace=library_namespace(), name="heron", star_count=1)
    assert names(search_queryset(actor=Actor(), query="heron")) == [
        "heron", f"{alice.username}/heron-tools", f"{bob.username}/heron-extra", f"{bob.username}/heron-few"]


def test_query_is_trimmed_and_lowercased(alice):
    repo(alice, "pelican")
    assert names(search_queryset(actor=Actor(), query="  PELICAN ")) == [f"{alice.username}/pelican"]


def test_like_wildcards_are_literal(alice):
    repo(alice, "plain", description="nothing special")
    repo(alice, "percent", description="100% pure")
    assert names(search_queryset(actor=Actor(), query="%")) == [f"{alice.username}/percent"]
    assert names(search_queryset(actor=Actor(), query="_")) == []


def test_no_words_lists_everything_visible_by_stars_then_pulls(alice):
    repo(alice, "low", star_count=1, pull_count=50)
    repo(alice, "high", star_count=9)
    repo(alice, "mid", star_count=1, pull_count=70)
    repo(alice, "hidden", star_count=99, is_private=True)
    assert names(search_queryset(actor=Actor(), query="")) == [
        f"{alice.username}/high", f"{alice.username}/mid", f"{alice.username}/low"]


def test_each_repository_once_when_several_fields_match(alice):
    repo(alice, "otter", description="otter image")
    assert search_queryset(actor=Actor(), query="otter").count() == 1


def test_search_repositories_pages_and_counts(alice):
    for i in range(5):
        repo(alice, f"ibis{i}", star_count=i)
    page, total = search_repositories(actor=Actor(), query="ibis", offset=2, limit=2)
    assert total == 5
    assert names(page) == [f"{alice.username}/ibis2", f"{alice.username}/ibis1"]


class TestPrivate:
    def test_hidden_from_anonymous_and_strangers(self, alice, charlie):
        repo(alice, "secret-lynx", is_private=True)
        assert names(search_queryset(actor=Actor(), query="lynx")) == []
        assert names(search_queryset(actor=Actor.for_user(charlie), query="lynx")) == []

    def test_shown_to_owner(self, alice):
        repo(alice, "secret-lynx", is_private=True)
        assert names(search_queryset(actor=Actor.for_user(alice), query="lynx")) == [f"{alice.username}/secret-lynx"]

    def test_shown_to_collaborator(self, alice, bob):
        found = repo(alice, "secret-lynx", is_private=True)
        Collaborator.objects.create(repository=found, user=bob)
        assert names(search_queryset(actor=Actor.for_user(bob), query="lynx")) == [f"{alice.username}/secret-lynx"]

    def test_shown_to_team_with_a_grant_only(self, alice, bob):
        org = make_organization(alice)
        devs = team(org)
        Membership.objects.create(team=devs, user=bob)
        granted = RepositoryFactory(namespace=org.namespace, name="lynx-granted", is_private=True)
        RepositoryFactory(namespace=org.namespace, name="lynx-other", is_private=True)
        TeamPermission.objects.create(repository=granted, team=devs, permission="read")
        assert names(search_queryset(actor=Actor.for_user(bob), query="lynx")) == [f"{org.name}/lynx-granted"]
        assert len(names(search_queryset(actor=Actor.for_user(alice), query="lynx"))) == 2  # the owners team

    def test_private_official_image_only_for_staff(self, staff):
        RepositoryFactory(namespace=library_namespace(), name="lynx", is_private=True)
        assert names(search_queryset(actor=Actor.for_user(UserFactory()), query="lynx")) == []
        assert names(search_queryset(actor=Actor.for_user(staff), query="lynx")) == ["lynx"]


@postgresql_only
def test_migration_created_the_trigram_indexes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%_trgm'")
        created = {row[0] for row in cursor.fetchall()}
    assert created == {"repository_name_trgm", "repository_description_trgm", "namespace_name_trgm"}


@postgresql_only
@pytest.mark.parametrize("who", ["anonymous", "signed in"])
def test_word_search_can_use_the_trigram_indexes(alice, who):
    """The index expressions match the query's: with scans and plain index scans priced out, the
    repositories that match are found through the trigram indexes (a plan, never a timing; on a
    table this small PostgreSQL would rightly scan)."""
    repo(alice, "falcon", description="a bird")
    actor = Actor() if who == "anonymous" else Actor.for_user(alice)
    matches = search_queryset(actor=actor, query="falcon").order_by().values("pk")
    off = ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan")
    with connection.cursor() as cursor:
        cursor.execute("; ".join(f"SET {setting} = off" for setting in off))
        try:
            plan = matches.explain()
        finally:
            cursor.execute("; ".join(f"RESET {setting}" for setting in off))
    assert "repository_name_trgm" in plan and "repository_description_trgm" in plan


def test_exact_matches_come_first_on_every_page_boundary(alice, bob):
    """Pages of a best-match search join up: the exact matches, then the rest by popularity."""
    repo(alice, "kestrel", star_count=0)
    repo(bob, "kestrel", star_count=1)
    for i in range(5):
        repo(alice, f"kestrel-{i}", star_count=10 + i)
    results = search_queryset(actor=Actor(), query="kestrel")
    everything = names(results)
    assert everything[:2] == [f"{bob.username}/kestrel", f"{alice.username}/kestrel"]
    assert everything[2:] == [f"{alice.username}/kestrel-{i}" for i in (4, 3, 2, 1, 0)]
    for size in (1, 2, 3, 5):
        paged = [name for start in range(0, 7, size) for name in names(results[start:start + size])]
        assert paged == everything
    assert results.count() == len(results) == 7
    assert names([results[1]]) == [f"{alice.username}/kestrel"]


def test_an_explicit_order_replaces_best_match(alice):
    repo(alice, "osprey", star_count=0, pull_count=0)
    repo(alice, "osprey-cam", star_count=0, pull_count=9)
    results = search_queryset(actor=Actor(), query="osprey").order_by("-pull_count")
    assert names(results) == [f"{alice.username}/osprey-cam", f"{alice.username}/osprey"]


def test_search_repositories_counts_no_further_than_the_limit_and_pages_no_further(alice, monkeypatch):
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 3)
    for i in range(5):
        repo(alice, f"tern{i}", star_count=i)
    page, total = search_repositories(actor=Actor(), query="tern", offset=0, limit=2)
    assert total == 3 and len(page) == 2
    assert search_repositories(actor=Actor(), query="tern", offset=3, limit=2) == ([], 3)
