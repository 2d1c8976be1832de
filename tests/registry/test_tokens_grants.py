"""What a registry token grants: the intersection of what was asked and what is allowed."""

import time

import jwt
import pytest
from django.conf import settings

from accounts.models import Membership, Namespace
from accounts.services import access_token_create, user_delete
from oci.scopes import parse_scopes
from registry.tokens import issue_registry_token
from repositories.models import Collaborator, TeamPermission
from repositories.permissions import Actor
from tests.factories import RepositoryFactory, UserFactory, library_namespace, make_organization, team

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def grant(actor, *scopes):
    """The decoded `access` claim of a token issued for `scopes`."""
    issued = issue_registry_token(actor=actor, scopes=parse_scopes(scopes))
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["access"] == issued.access
    return claims["access"]


def actions(actor, scope):
    (entry,) = grant(actor, scope)
    return entry["actions"]


def repo_of(user, private=False, name=None):
    kwargs = {"name": name} if name else {}
    return RepositoryFactory(namespace=Namespace.objects.get(user=user), is_private=private, **kwargs)


def test_anonymous_pulls_public(alice):
    repo = repo_of(alice)
    assert grant(Actor(), f"repository:{repo.full_name}:pull") == [
        {"type": "repository", "name": repo.full_name, "actions": ["pull"]}
    ]


def test_anonymous_gets_nothing_on_private(alice):
    repo = repo_of(alice, private=True)
    assert actions(Actor(), f"repository:{repo.full_name}:pull") == []


def test_grant_is_the_intersection_of_asked_and_allowed(alice, charlie):
    repo = repo_of(alice)
    assert actions(Actor.for_user(charlie), f"repository:{repo.full_name}:pull,push,delete") == ["pull"]


def test_only_asked_actions_are_granted(alice):
    repo = repo_of(alice)
    assert actions(Actor.for_user(alice), f"repository:{repo.full_name}:pull") == ["pull"]


def test_owner_gets_everything_asked(alice):
    repo = repo_of(alice, private=True)
    assert actions(Actor.for_user(alice), f"repository:{repo.full_name}:pull,push,delete") == [
        "delete", "pull", "push"]


def test_star_for_the_owner(alice):
    repo = repo_of(alice)
    assert actions(Actor.for_user(alice), f"repository:{repo.full_name}:*") == ["*"]


def test_no_star_for_a_collaborator(alice, bob):
    repo = repo_of(alice)
    Collaborator.objects.create(repository=repo, user=bob)
    assert actions(Actor.for_user(bob), f"repository:{repo.full_name}:*") == []


def test_collaborator_pushes(alice, bob):
    repo = repo_of(alice, private=True)
    Collaborator.objects.create(repository=repo, user=bob)
    assert actions(Actor.for_user(bob), f"repository:{repo.full_name}:pull,push,delete") == ["pull", "push"]


def test_star_for_an_org_team_admin(alice, bob):
    org = make_organization(alice)
    admins = team(org)
    Membership.objects.create(team=admins, user=bob)
    repo = RepositoryFactory(namespace=org.namespace, is_private=True)
    TeamPermission.objects.create(repository=repo, team=admins, permission="admin")
    assert actions(Actor.for_user(bob), f"repository:{repo.full_name}:*") == ["*"]


def test_private_and_missing_repositories_grant_the_same(alice, charlie):
    private = repo_of(alice, private=True, name="secret")
    asked = "pull,push,delete,*"
    existing = grant(Actor.for_user(charlie), f"repository:{private.full_name}:{asked}")
    missing = grant(Actor.for_user(charlie), f"repository:{alice.username}/nothere:{asked}")
    assert [dict(e, name="") for e in existing] == [dict(e, name="") for e in missing]
    assert existing[0]["actions"] == []


def test_push_creates_in_own_namespace(alice):
    assert actions(Actor.for_user(alice), f"repository:{alice.username}/newapp:pull,push") == ["pull", "push"]


def test_no_delete_on_a_repository_that_does_not_exist(alice):
    assert actions(Actor.for_user(alice), f"repository:{alice.username}/newapp:delete,*") == []


def test_no_push_into_someone_elses_namespace(alice, charlie):
    assert actions(Actor.for_user(charlie), f"repository:{alice.username}/newapp:pull,push") == []


def test_no_push_to_someone_elses_public_repository(alice, charlie):
    repo = repo_of(alice)
    assert actions(Actor.for_user(charlie), f"repository:{repo.full_name}:pull,push") == ["pull"]


def test_no_push_into_a_namespace_that_does_not_exist(alice):
    assert actions(Actor.for_user(alice), "repository:nosuchnamespace/app:pull,push") == []


def test_no_push_into_a_deleted_account(alice):
    name = alice.username
    user_delete(user=alice)
    other = UserFactory()
    assert actions(Actor.for_user(other), f"repository:{name}/app:pull,push") == []


def test_root_namespace_push_refused_for_users(alice):
    assert actions(Actor.for_user(alice), "repository:newofficial:pull,push") == []


def test_root_namespace_push_granted_to_staff(staff):
    assert actions(Actor.for_user(staff), "repository:newofficial:pull,push") == ["pull", "push"]


def test_staff_may_do_everything_with_official_images(staff):
    repo = RepositoryFactory(namespace=library_namespace())
    assert actions(Actor.for_user(staff), f"repository:{repo.name}:*") == ["*"]


def test_official_image_pull_by_short_and_long_name(alice):
    repo = RepositoryFactory(namespace=library_namespace())
    assert grant(Actor(), f"repository:{repo.name}:pull", f"repository:library/{repo.name}:pull") == [
        {"type": "repository", "name": repo.name, "actions": ["pull"]},
        {"type": "repository", "name": f"library/{repo.name}", "actions": ["pull"]},
    ]


def test_org_member_who_may_create_repositories(alice, bob):
    org = make_organization(alice)
    Membership.objects.create(team=team(org, can_create_repositories=True), user=bob)
    assert actions(Actor.for_user(bob), f"repository:{org.name}/new:pull,push") == ["pull", "push"]


def test_org_member_who_may_not_create_repositories(alice, bob):
    org = make_organization(alice)
    Membership.objects.create(team=team(org), user=bob)
    assert actions(Actor.for_user(bob), f"repository:{org.name}/new:pull,push") == []


@pytest.mark.parametrize("name", ["Alice/App", "a/b/c", "localhost:5000/x/y", "x"])
def test_invalid_names_grant_nothing(staff, name):
    assert actions(Actor.for_user(staff), f"repository:{name}:pull,push") == []


def test_mount_asks_two_scopes(alice):
    source = repo_of(alice)
    access = grant(Actor.for_user(alice), f"repository:{alice.username}/target:pull,push",
                   f"repository:{source.full_name}:pull")
    assert [entry["actions"] for entry in access] == [["pull", "push"], ["pull"]]


@pytest.mark.parametrize("asked", ["*", "search"])
def test_catalog_is_granted_to_everyone(db, asked):
    assert grant(Actor(), f"registry:catalog:{asked}") == [
        {"type": "registry", "name": "catalog", "actions": [asked]}
    ]


def test_no_scope_grants_nothing(alice):
    assert grant(Actor.for_user(alice)) == []


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("repo:public_read", []), ("repo:read", ["pull"]), ("repo:write", ["pull", "push"]),
     ("repo:admin", ["delete", "pull", "push"])],
)
def test_access_token_scope_caps_the_grant(alice, scope, expected):
    repo = repo_of(alice, private=True)
    token, _ = access_token_create(user=alice, label="t", scope=scope)
    actor = Actor.for_user(alice, token)
    assert actions(actor, f"repository:{repo.full_name}:pull,push,delete") == expected


def test_read_token_may_not_create_repositories(alice):
    token, _ = access_token_create(user=alice, label="t", scope="repo:read")
    assert actions(Actor.for_user(alice, token), f"repository:{alice.username}/new:pull,push") == []


def test_claims(alice):
    issued = issue_registry_token(actor=Actor.for_user(alice), scopes=[])
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["iss"] == settings.HUB_PUBLIC_URL
    assert claims["sub"] == alice.username
    assert claims["aud"] == settings.REGISTRY_SERVICE
    assert claims["exp"] - claims["iat"] == issued.expires_in == settings.REGISTRY_TOKEN_TTL
    assert claims["nbf"] <= time.time() + 1
    assert claims["jti"]


def test_anonymous_subject_is_empty(db):
    claims = jwt.decode(issue_registry_token(actor=Actor(), scopes=[]).token, options={"verify_signature": False})
    assert claims["sub"] == ""


def test_every_token_has_its_own_id(alice):
    ids = {jwt.decode(issue_registry_token(actor=Actor(), scopes=[]).token,
                      options={"verify_signature": False})["jti"] for _ in range(5)}
    assert len(ids) == 5


def test_expires_in_is_at_least_a_minute(db, settings):
    settings.REGISTRY_TOKEN_TTL = 5
    assert issue_registry_token(actor=Actor(), scopes=[]).expires_in == 60

