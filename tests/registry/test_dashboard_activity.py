"""The dashboard's recent activity (registry.selectors.recent_activity): exactly the pushes, stars and new
collaborators of the repositories in the user's namespaces that they may see, newest first, and a
dashboard whose number of queries does not grow with its namespaces, repositories or events."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership, Namespace
from registry.models import Manifest, Tag
from registry.selectors import recent_activity
from repositories.models import Collaborator, Star
from repositories.selectors import user_namespaces
from tests.factories import RepositoryFactory, UserFactory, make_organization, team
from tests.repositories.pages_support import personal_repo

pytestmark = pytest.mark.django_db

START = timezone.now().replace(microsecond=0) - dt.timedelta(days=1)
_digests = itertools.count(1)


def at(minute: int) -> dt.datetime:
    return START + dt.timedelta(minutes=minute)


def tag(repository, name: str, minute: int, pushed_by) -> Tag:
    manifest = Manifest.objects.create(repository=repository, digest=f"sha256:{next(_digests):064x}", content=b"{}",
                                       size=2, media_type="application/vnd.oci.image.manifest.v1+json")
    return Tag.objects.create(repository=repository, name=name, manifest=manifest, pushed_at=at(minute),
                              pushed_by=pushed_by)


def seen(events) -> list[tuple]:
    return [(event.when, event.kind, event.repository.display_name,
             event.actor.username if event.actor is not None else None, event.detail) for event in events]


@pytest.fixture
def scene(alice, bob):
    """alice's public and private repositories, an organization she owns with a public and a private
    repository (bob a member of one of its teams, granted nothing), events in each, and events in a
    stranger's repository that are nobody's dashboard business."""
    carol = UserFactory(username="carol")
    organization = make_organization(alice, name="acme")
    Membership.objects.create(team=team(organization), user=bob)
    acme = Namespace.objects.get(organization=organization)
    public, private = personal_repo(alice, name="public"), personal_repo(alice, name="private", private=True)
    org_public = RepositoryFactory(namespace=acme, name="orgpublic")
    org_private = RepositoryFactory(namespace=acme, name="orgprivate", is_private=True)
    tag(public, "v1", 1, alice)
    tag(public, "sha256-" + "a" * 64 + ".sig", 2, alice)  # an attachment: never shown
    tag(private, "v2", 3, None)  # pushed by an account since deleted: "Someone"
    Star.objects.create(repository=public, user=carol, created_at=at(4))
    Collaborator.objects.create(repository=private, user=carol, created_at=at(5))
    tag(org_public, "latest", 6, bob)
    Star.objects.create(repository=org_private, user=carol, created_at=at(7))
    tag(org_private, "secret", 8, alice)
    stranger = personal_repo(carol, name="elsewhere")
    tag(stranger, "v1", 9, carol)
    Star.objects.create(repository=stranger, user=alice, created_at=at(10))
    return {"alice": alice, "bob": bob, "carol": carol}


def test_activity_is_the_events_of_the_repositories_one_may_see_in_ones_namespaces(scene):
    alice = scene["alice"]
    assert seen(recent_activity(alice, user_namespaces(alice))) == [
        (at(8), "push", "acme/orgprivate", alice.username, "secret"),
        (at(7), "star", "acme/orgprivate", "carol", ""),
        (at(6), "push", "acme/orgpublic", scene["bob"].username, "latest"),
        (at(5), "collaborator", f"{alice.username}/private", "carol", ""),
        (at(4), "star", f"{alice.username}/public", "carol", ""),
        (at(3), "push", f"{alice.username}/private", None, "v2"),
        (at(1), "push", f"{alice.username}/public", alice.username, "v1"),
    ]


def test_a_private_repositorys_events_are_hidden_from_a_member_who_cannot_see_it(scene):
    bob = scene["bob"]
    assert seen(recent_activity(bob, user_namespaces(bob))) == [
        (at(6), "push", "acme/orgpublic", bob.username, "latest"),
    ]


def test_activity_is_the_newest_events_of_all_kinds_with_pushes_first_at_the_same_instant(alice):
    repository = personal_repo(alice, name="busy")
    fans = UserFactory.create_batch(20)
    for minute in range(20):
        tag(repository, f"t{minute}", minute, alice)
    for minute, fan in enumerate(fans):
        Star.objects.create(repository=repository, user=fan, created_at=at(minute))
    Collaborator.objects.create(repository=repository, user=fans[0], created_at=at(19))
    events = seen(recent_activity(alice, user_namespaces(alice), limit=5))
    assert events == [
        (at(19), "push", f"{alice.username}/busy", alice.username, "t19"),
        (at(19), "star", f"{alice.username}/busy", fans[19].username, ""),
        (at(19), "collaborator", f"{alice.username}/busy", fans[0].username, ""),
        (at(18), "push", f"{alice.username}/busy", alice.username, "t18"),
        (at(18), "star", f"{alice.username}/busy", fans[18].username, ""),
    ]


def dashboard_queries(user) -> int:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/")
    assert response.status_code == 200
    return len(captured.captured_queries)


def busy_namespaces(owner, organizations: int, repositories: int) -> None:
    """`organizations` organizations of `owner`, each of their namespaces with `repositories` repositories,
    each with a push, a star and a collaborator, and a star of `owner`'s on each."""
    for index in range(organizations):
        make_organization(owner, name=f"org{index}{owner.username}"[:30])
    fan = UserFactory()
    for namespace in user_namespaces(owner):
        for number in range(repositories):
            repository = RepositoryFactory(namespace=namespace, is_private=number % 2 == 0)
            tag(repository, "latest", number, owner)
            Star.objects.create(repository=repository, user=fan, created_at=at(number))
            Star.objects.create(repository=repository, user=owner, created_at=at(number))
            Collaborator.objects.create(repository=repository, user=fan, created_at=at(number))


def test_the_dashboard_makes_a_bounded_number_of_queries(alice, bob, django_assert_max_num_queries):
    """Session, user, namespaces (2), repositories (count, page), organizations, starred, activity (2:
    the visible repositories' ids, then the events with their repositories and actors), storage
    warnings (2). The three ORM queries the activity made before made it 13."""
    busy_namespaces(alice, organizations=3, repositories=8)
    client = Client()
    client.force_login(alice)
    with django_assert_max_num_queries(12):
        html = client.get("/").content.decode()
    assert "became a collaborator" in html and " pushed " in html and " starred " in html


def test_the_dashboards_queries_do_not_grow_with_its_namespaces_repositories_or_events(alice, bob):
    busy_namespaces(bob, organizations=1, repositories=2)
    busy_namespaces(alice, organizations=4, repositories=12)
    assert dashboard_queries(alice) == dashboard_queries(bob)
