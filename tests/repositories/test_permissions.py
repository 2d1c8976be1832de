"""The whole permission matrix: who may pull, push, delete and administer which repository."""

import pytest
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
)
from repositories.selectors import repositories_visible_to
from tests.factories import RepositoryFactory, UserFactory, library_namespace, make_organization, team

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
