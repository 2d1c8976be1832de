"""The whole permission matrix: who may pull, push, delete and administer which repository."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AccessToken, Membership, Namespace
from accounts.services import access_token_create
from repositories.models import Collaborator, Repository, TeamPermission
from repositories.permissions import (
    ADMIN,
    ALL_ACTIONS,
    DELETE,
    NO_ACTIONS,
    PULL,
    PUSH,
    Actor,
    may_create_repository,
    repository_actions,
    repository_actions_many,
)
from repositories.selectors import repositories_visible_to
from tests.factories import RepositoryFactory, UserFactory, library_namespace, make_organization, team, unique_name

PULL_ONLY = frozenset({PULL})
PULL_PUSH = frozenset({PULL, PUSH})

pytestmark = pytest.mark.django_db


def personal_repo(owner, private):
    return RepositoryFactory(namespace=Namespace.objects.get(user=owner), is_private=private)


@pytest.mark.parametrize("private", [False, True])
def test_owner_may_do_everything(alice, private):
    repo = personal_repo(alice, private)
    assert repository_actions(Actor.for_user(alice), repo) == ALL_ACTIONS


@pytest.mark.parametrize(("private", "expected"), [(False, PULL_ONLY), (True, NO_ACTIONS)])
def test_anonymous_pulls_only_public(alice, private, expected):
    repo = personal_repo(alice, private)
    assert repository_actions(Actor(), repo) == expected


@pytest.mark.parametrize(("private", "expected"), [(False, PULL_ONLY), (True, NO_ACTIONS)])
def test_stranger_pulls_only_public(alice, charlie, private, expected):
    repo = personal_repo(alice, private)
    assert repository_actions(Actor.for_user(charlie), repo) == expected


@pytest.mark.parametrize("private", [False, True])
def test_collaborator_pulls_and_pushes(alice, bob, private):
    repo = personal_repo(alice, private)
    Collaborator.objects.create(repository=repo, user=bob)
    assert repository_actions(Actor.for_user(bob), repo) == PULL_PUSH


def test_collaborator_of_one_repository_gets_nothing_on_another(alice, bob):
    Collaborator.objects.create(repository=personal_repo(alice, True), user=bob)
    other = personal_repo(alice, True)
    assert repository_actions(Actor.for_user(bob), other) == NO_ACTIONS


def test_inactive_user_is_anonymous(alice):
    repo = personal_repo(alice, True)
    alice.is_active = False
    assert repository_actions(Actor.for_user(alice), repo) == NO_ACTIONS


@pytest.mark.parametrize(
    ("level", "expected"),
    [("read", PULL_ONLY), ("write", PULL_PUSH), ("admin", ALL_ACTIONS)],
)
def test_team_permission_levels_on_private_org_repository(alice, bob, level, expected):
    org = make_organization(alice)
    developers = team(org)
    Membership.objects.create(team=developers, user=bob)
    repo = RepositoryFactory(namespace=org.namespace, is_private=True)
    TeamPermission.objects.create(repository=repo, team=developers, permission=level)
    assert repository_actions(Actor.for_user(bob), repo) == expected


def test_best_of_several_team_permissions_wins(alice, bob):
    org = make_organization(alice)
    readers, writers = team(org), team(org)
    Membership.objects.create(team=readers, user=bob)
    Membership.objects.create(team=writers, user=bob)
    repo = RepositoryFactory(namespace=org.namespace, is_private=True)
    TeamPermission.objects.create(repository=repo, team=readers, permission="read")
    TeamPermission.objects.create(repository=repo, team=writers, permission="write")
    assert repository_actions(Actor.for_user(bob), repo) == PULL_PUSH


def test_org_member_without_team_permission_sees_nothing_private(alice, bob):
    org = make_organization(alice)
    Membership.objects.create(team=team(org), user=bob)
    repo = RepositoryFactory(namespace=org.namespace, is_private=True)
    assert repository_actions(Actor.for_user(bob), repo) == NO_ACTIONS


def test_org_owners_may_do_everything(alice):
    org = make_organization(alice)
    repo = RepositoryFactory(namespace=org.namespace, is_private=True)
    assert repository_actions(Actor.for_user(alice), repo) == ALL_ACTIONS


@pytest.mark.parametrize(("is_staff", "expected"), [(True, ALL_ACTIONS), (False, PULL_ONLY)])
def test_only_staff_manage_official_images(is_staff, expected):
    user = UserFactory(is_staff=is_staff)
    repo = RepositoryFactory(namespace=library_namespace(), is_private=False)
    assert repository_actions(Actor.for_user(user), repo) == expected


def test_staff_have_no_special_rights_on_personal_private_repositories(alice, staff):
    repo = personal_repo(alice, True)
    assert repository_actions(Actor.for_user(staff), repo) == NO_ACTIONS


@pytest.mark.parametrize(
    ("scope", "private", "expected"),
    [
        (AccessToken.Scope.PUBLIC_READ, False, PULL_ONLY),
        (AccessToken.Scope.PUBLIC_READ, True, NO_ACTIONS),
        (AccessToken.Scope.READ, True, PULL_ONLY),
        (AccessToken.Scope.WRITE, True, PULL_PUSH),
        (AccessToken.Scope.ADMIN, True, ALL_ACTIONS),
    ],
)
def test_token_scope_caps_the_owner(alice, scope, private, expected):
    repo = personal_repo(alice, private)
    token, _ = access_token_create(user=alice, label="ci", scope=scope)
    assert repository_actions(Actor.for_user(alice, token), repo) == expected


def test_token_scope_never_grants_more_than_the_user_has(alice, bob):
    repo = personal_repo(alice, True)
    Collaborator.objects.create(repository=repo, user=bob)
    token, _ = access_token_create(user=bob, label="ci", scope=AccessToken.Scope.ADMIN)
    assert repository_actions(Actor.for_user(bob, token), repo) == PULL_PUSH


def test_delete_and_admin_only_for_owners_team_admins_and_staff(alice, bob):
    repo = personal_repo(alice, False)
    Collaborator.objects.create(repository=repo, user=bob)
    granted = repository_actions(Actor.for_user(bob), repo)
    assert DELETE not in granted and ADMIN not in granted


class World:
    """One of each kind of repository, and every persona of the matrix above."""

    def __init__(self, alice, bob, charlie, staff):
        self.alice, self.bob, self.charlie, self.staff = alice, bob, charlie, staff
        org = make_organization(alice)
        other_org = make_organization(charlie)  # alice is no owner of this one
        tombstone = Namespace.objects.create(name=unique_name("gone")[:30], kind=Namespace.Kind.ORGANIZATION,
                                             deleted_at=timezone.now())
        repositories = {
            "alice public": personal_repo(alice, False),
            "alice private": personal_repo(alice, True),
            "alice private, bob collaborates": personal_repo(alice, True),
            "alice public, bob collaborates": personal_repo(alice, False),
            "charlie private": personal_repo(charlie, True),
            "org public": RepositoryFactory(namespace=org.namespace, is_private=False),
            "org private": RepositoryFactory(namespace=org.namespace, is_private=True),
            "org private, teams": RepositoryFactory(namespace=org.namespace, is_private=True),
            "org public, teams": RepositoryFactory(namespace=org.namespace, is_private=False),
            "other org private, bob admin": RepositoryFactory(namespace=other_org.namespace, is_private=True),
            "library public": RepositoryFactory(namespace=library_namespace(), is_private=False),
            "library private": RepositoryFactory(namespace=library_namespace(), is_private=True),
            "tombstone public": RepositoryFactory(namespace=tombstone, is_private=False),
            "tombstone private": RepositoryFactory(namespace=tombstone, is_private=True),
        }
        for name in ("alice private, bob collaborates", "alice public, bob collaborates"):
            Collaborator.objects.create(repository=repositories[name], user=bob)
        self.members = {}
        for level in ("read", "write", "admin"):
            member = UserFactory()
            group = team(org)
            Membership.objects.create(team=group, user=member)
            for name in ("org private, teams", "org public, teams"):
                TeamPermission.objects.create(repository=repositories[name], team=group, permission=level)
            self.members[level] = member
        readers, writers, other_admins = team(org), team(org), team(other_org)
        for group in (readers, writers, other_admins):
            Membership.objects.create(team=group, user=bob)
        TeamPermission.objects.create(repository=repositories["org private, teams"], team=readers, permission="read")
        TeamPermission.objects.create(repository=repositories["org public, teams"], team=writers, permission="write")
        TeamPermission.objects.create(repository=repositories["other org private, bob admin"], team=other_admins,
                                      permission="admin")
        self.repositories = list(Repository.objects.select_related("namespace")
                                 .filter(pk__in=[r.pk for r in repositories.values()]))

    def actor(self, persona: str) -> Actor:
        if persona == "anonymous":
            return Actor()
        if persona == "inactive alice":
            self.alice.is_active = False
            return Actor.for_user(self.alice)
        if persona.startswith("team "):
            return Actor.for_user(self.members[persona.removeprefix("team ")])
        user_name, _, scope = persona.partition(" token ")
        user = getattr(self, user_name)
        token = access_token_create(user=user, label="t", scope=scope)[0] if scope else None
        return Actor.for_user(user, token)


PERSONAS = [
    "anonymous", "alice", "bob", "charlie", "staff", "inactive alice", "team read", "team write", "team admin",
    *(f"alice token {scope}" for scope in AccessToken.Scope.values),
    *(f"bob token {scope}" for scope in AccessToken.Scope.values),
    *(f"staff token {scope}" for scope in AccessToken.Scope.values),
]


@pytest.mark.parametrize("persona", PERSONAS)
def test_repository_actions_many_is_repository_actions_for_each(alice, bob, charlie, staff, persona):
    world = World(alice, bob, charlie, staff)
    actor = world.actor(persona)
    one_by_one = {repository.pk: repository_actions(actor, repository) for repository in world.repositories}
    with CaptureQueriesContext(connection) as queries:
        many = repository_actions_many(actor, world.repositories)
    assert many == one_by_one
    assert len(queries) <= 3


def test_repository_actions_many_of_nothing_asks_nothing(alice):
    with CaptureQueriesContext(connection) as queries:
        assert repository_actions_many(Actor.for_user(alice), []) == {}
    assert len(queries) == 0


class TestMayCreate:
    def test_in_own_namespace(self, alice, alice_namespace):
        assert may_create_repository(Actor.for_user(alice), alice_namespace)

    def test_not_in_someone_elses_namespace(self, alice_namespace, bob):
        assert not may_create_repository(Actor.for_user(bob), alice_namespace)

    def test_not_anonymous(self, alice_namespace):
        assert not may_create_repository(Actor(), alice_namespace)

    def test_org_owner_may(self, alice):
        org = make_organization(alice)
        assert may_create_repository(Actor.for_user(alice), org.namespace)

    @pytest.mark.parametrize(("right", "expected"), [(True, True), (False, False)])
    def test_org_team_with_create_right(self, alice, bob, right, expected):
        org = make_organization(alice)
        Membership.objects.create(team=team(org, can_create_repositories=right), user=bob)
        assert may_create_repository(Actor.for_user(bob), org.namespace) is expected

    @pytest.mark.parametrize(("is_staff", "expected"), [(True, True), (False, False)])
    def test_library_only_staff(self, is_staff, expected):
        user = UserFactory(is_staff=is_staff)
        assert may_create_repository(Actor.for_user(user), library_namespace()) is expected

    def test_read_token_may_not_create(self, alice, alice_namespace):
        token, _ = access_token_create(user=alice, label="ro", scope=AccessToken.Scope.READ)
        assert not may_create_repository(Actor.for_user(alice, token), alice_namespace)

    def test_tombstone_refused(self, alice, alice_namespace):
        Namespace.objects.filter(pk=alice_namespace.pk).update(deleted_at=timezone.now())
        alice_namespace.refresh_from_db()
        assert not may_create_repository(Actor.for_user(alice), alice_namespace)


class TestVisibility:
    def test_anonymous_sees_public_only(self, alice):
        public, private = personal_repo(alice, False), personal_repo(alice, True)
        visible = set(repositories_visible_to(Actor()))
        assert public in visible and private not in visible

    def test_collaborator_sees_private(self, alice, bob):
        repo = personal_repo(alice, True)
        Collaborator.objects.create(repository=repo, user=bob)
        assert repo in set(repositories_visible_to(Actor.for_user(bob)))

    def test_team_member_sees_permitted_private_only(self, alice, bob):
        org = make_organization(alice)
        devs = team(org)
        Membership.objects.create(team=devs, user=bob)
        allowed = RepositoryFactory(namespace=org.namespace, is_private=True)
        hidden = RepositoryFactory(namespace=org.namespace, is_private=True)
        TeamPermission.objects.create(repository=allowed, team=devs, permission="read")
        visible = set(repositories_visible_to(Actor.for_user(bob)))
        assert allowed in visible and hidden not in visible

    def test_org_owner_sees_all_org_repositories(self, alice):
        org = make_organization(alice)
        repo = RepositoryFactory(namespace=org.namespace, is_private=True)
        assert repo in set(repositories_visible_to(Actor.for_user(alice)))

    def test_public_read_token_hides_private(self, alice):
        repo = personal_repo(alice, True)
        token, _ = access_token_create(user=alice, label="pub", scope=AccessToken.Scope.PUBLIC_READ)
        assert repo not in set(repositories_visible_to(Actor.for_user(alice, token)))

    def test_no_duplicates_with_several_grants(self, alice, bob):
        org = make_organization(alice)
        a, b = team(org), team(org)
        Membership.objects.create(team=a, user=bob)
        Membership.objects.create(team=b, user=bob)
        repo = RepositoryFactory(namespace=org.namespace, is_private=True)
        TeamPermission.objects.create(repository=repo, team=a, permission="read")
        TeamPermission.objects.create(repository=repo, team=b, permission="write")
        names = list(repositories_visible_to(Actor.for_user(bob)).filter(pk=repo.pk))
        assert len(names) == 1 and isinstance(names[0], Repository)


def test_a_stranger_to_an_organization_costs_one_query_for_a_page_of_its_repositories(alice, charlie):
    org = make_organization(alice)
    for _ in range(3):
        RepositoryFactory(namespace=org.namespace, is_private=False)
    repositories = list(Repository.objects.filter(namespace=org.namespace).select_related("namespace"))
    with CaptureQueriesContext(connection) as queries:
        actions = repository_actions_many(Actor.for_user(charlie), repositories)
    assert actions == {repository.pk: PULL_ONLY for repository in repositories}
    assert len(queries) == 1
