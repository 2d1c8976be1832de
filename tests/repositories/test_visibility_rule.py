"""The SQL visibility rule (`repositories.selectors.VisibleTo`) against the per-repository rule
(`repositories.permissions`): for every persona, the list rule shows exactly what the permission
rule lets them pull, and it keeps working wherever Django puts the repository table."""

import pytest
from django.db.models import Q

from accounts.models import Membership, Namespace
from accounts.services import team_add_member
from repositories.models import Collaborator, Repository, Star, TeamPermission
from repositories.permissions import PULL, Actor, repository_actions
from repositories.selectors import VisibleTo, repositories_visible_to
from tests.factories import RepositoryFactory, UserFactory, library_namespace, make_organization, team

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alice, bob, charlie):
    """Public and private repositories of every kind, and people with every kind of grant."""
    staff = UserFactory(is_staff=True)
    org = make_organization(alice)
    other_org = make_organization(charlie)
    devs, ops = team(org), team(org)
    Membership.objects.create(team=devs, user=bob)
    Membership.objects.create(team=ops, user=charlie)
    repositories = {}
    for private in (False, True):
        word = "private" if private else "public"
        for label, owner in (("alice", alice), ("bob", bob), ("charlie", charlie)):
            repositories[f"{label}-{word}"] = RepositoryFactory(
                namespace=Namespace.objects.get(user=owner), is_private=private)
        repositories[f"org-{word}"] = RepositoryFactory(namespace=org.namespace, is_private=private)
        repositories[f"org-devs-{word}"] = RepositoryFactory(namespace=org.namespace, is_private=private)
        repositories[f"other-org-{word}"] = RepositoryFactory(namespace=other_org.namespace, is_private=private)
        repositories[f"library-{word}"] = RepositoryFactory(namespace=library_namespace(), is_private=private)
    Collaborator.objects.create(repository=repositories["alice-private"], user=bob)
    TeamPermission.objects.create(repository=repositories["org-devs-private"], team=devs, permission="read")
    TeamPermission.objects.create(repository=repositories["org-devs-public"], team=ops, permission="write")
    return {"people": [alice, bob, charlie, staff, UserFactory()], "repositories": repositories}


def allowed_by_permissions(actor, repositories):
    return {r.pk for r in repositories if PULL in repository_actions(actor, r)}


def test_list_rule_matches_permission_rule_for_every_persona(world):
    everything = list(Repository.objects.select_related("namespace"))
    for person in world["people"]:
        actor = Actor.for_user(person)
        listed = set(repositories_visible_to(actor).values_list("pk", flat=True))
        assert listed == allowed_by_permissions(actor, everything), person.username


def test_each_grant_shows_its_private_repository(world, alice, bob):
    repos = world["repositories"]
    bob_sees = set(repositories_visible_to(Actor.for_user(bob)))
    assert {repos["alice-private"], repos["org-devs-private"], repos["bob-private"]} <= bob_sees
    assert not {repos["org-private"], repos["other-org-private"], repos["library-private"]} & bob_sees
    assert repos["org-private"] in set(repositories_visible_to(Actor.for_user(alice)))


def test_owners_of_one_organization_see_nothing_private_of_another(world, alice):
    assert world["repositories"]["other-org-private"] not in set(repositories_visible_to(Actor.for_user(alice)))


def test_a_new_owner_sees_the_organization_private_repositories(world, charlie):
    organization = world["repositories"]["org-private"].namespace.organization
    assert world["repositories"]["org-private"] not in set(repositories_visible_to(Actor.for_user(charlie)))
    team_add_member(team=organization.owners_team, username=charlie.username)
    assert world["repositories"]["org-private"] in set(repositories_visible_to(Actor.for_user(charlie)))


def test_staff_see_private_official_images(world):
    staff = world["people"][3]
    assert world["repositories"]["library-private"] in set(repositories_visible_to(Actor.for_user(staff)))


def test_rule_holds_inside_a_subquery(world, bob):
    """As `repository__in=<visible>`, Django aliases the repository table (U0): the rule follows."""
    repos = world["repositories"]
    for repo in (repos["alice-private"], repos["org-private"], repos["alice-public"]):
        Star.objects.create(repository=repo, user=bob)
    visible = repositories_visible_to(Actor.for_user(bob)).values("pk")
    starred = set(Star.objects.filter(user=bob, repository__in=visible).values_list("repository_id", flat=True))
    assert starred == {repos["alice-private"].pk, repos["alice-public"].pk}


def test_rule_holds_through_a_join_from_another_table(world, bob):
    repos = world["repositories"]
    for repo in (repos["alice-private"], repos["org-private"]):
        Star.objects.create(repository=repo, user=bob)
    stars = Star.objects.filter(user=bob).filter(
        Q(repository__in=repositories_visible_to(Actor.for_user(bob))))
    assert {star.repository_id for star in stars} == {repos["alice-private"].pk}


def test_exclude_is_the_complement(world, bob):
    visible = set(repositories_visible_to(Actor.for_user(bob)).values_list("pk", flat=True))
    hidden = set(Repository.objects.exclude(VisibleTo(bob.pk)).values_list("pk", flat=True))
    assert visible.isdisjoint(hidden)
    assert visible | hidden == set(Repository.objects.values_list("pk", flat=True))


def test_rules_for_different_users_are_not_equal():
    assert VisibleTo(1) != VisibleTo(2)
    assert VisibleTo(1) != VisibleTo(1, staff=True)
    assert VisibleTo(1) == VisibleTo(1)
