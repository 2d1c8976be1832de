"""The audit log records the remaining changes of issue 21's list: collaborators and team access removed,
teams changed, members leaving, webhooks changed, build sources and build rules, organization retention,
each in the organization's or the repository owner's log, without secret values."""

import base64

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Namespace
from accounts.services import (
    organization_leave,
    team_add_member,
    team_create,
    team_delete,
    team_remove_member,
    team_update,
)
from builds import constants
from builds.models import BuildRule
from builds.services import (
    build_rule_create,
    build_rule_delete,
    build_rule_update,
    build_source_link,
    build_source_rotate_token,
    build_source_unlink,
)
from repositories.services import collaborator_remove, repository_create, team_permission_remove, team_permission_set
from tests.factories import make_organization, team
from webhooks.services import webhook_create, webhook_set_active, webhook_update

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def events(account: Namespace, prefix: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account=account, action__startswith=prefix).order_by("pk"))


@pytest.fixture
def organization(alice):
    return make_organization(alice)


@pytest.fixture
def org_account(organization) -> Namespace:
    return Namespace.objects.get(organization=organization)


def test_removing_a_collaborator_is_recorded(alice_repo, bob):
    collaborator_remove(repository=alice_repo, username=bob.username)
    [event] = events(alice_repo.namespace, "repo.collaborator.remove")
    assert (event.name, event.data) == (alice_repo.full_name, {"collaborator": bob.username})


def test_granting_and_removing_team_access_is_recorded(alice, organization, org_account):
    repository = repository_create(namespace=org_account, name="api", user=alice)
    crew = team(organization, "crew")
    team_permission_set(repository=repository, team=crew, permission="write")
    team_permission_remove(repository=repository, team=crew)
    assert [(e.action, e.data) for e in events(org_account, "repo.team_permission")] == [
        ("repo.team_permission.set", {"team": "crew", "permission": "write"}),
        ("repo.team_permission.remove", {"team": "crew"}),
    ]


def test_teams_created_changed_and_deleted_are_recorded(organization, org_account):
    crew = team_create(organization=organization, name="crew")
    team_update(team=crew, name="builders", description="they build")
    team_delete(team=crew)
    assert [(e.action, e.name) for e in events(org_account, "org.team")] == [
        ("org.team.create", "crew"), ("org.team.update", "builders"), ("org.team.delete", "builders")]
    assert events(org_account, "org.team.update")[0].data == {"name": "builders", "description": "they build"}


def test_members_removed_and_leaving_are_recorded(organization, org_account, bob, charlie):
    crew = team(organization, "crew")
    team_add_member(team=crew, username=bob.username)
    team_add_member(team=crew, username=charlie.username)
    team_remove_member(team=crew, user=bob)
    organization_leave(organization=organization, user=charlie)
    removed, left = events(org_account, "org.member.remove"), events(org_account, "org.member.leave")
    assert [e.data for e in removed] == [{"member": bob.username}]
    assert [(e.data, e.actor_name) for e in left] == [({"member": charlie.username}, charlie.username)]


def test_webhook_changes_name_their_fields_but_never_values(alice, alice_repo):
    hook = webhook_create(repository=alice_repo, name="ci", url="https://hooks.example.com/a", events=["push"],
                          user=alice)
    webhook_update(webhook=hook, url="https://hooks.example.com/b", secret="n3w-s3cret-value",
                   headers={"X-Api-Key": "header-value-1"})
    webhook_set_active(webhook=hook, active=False)
    changed, paused = events(alice_repo.namespace, "webhook.update")
    assert changed.data == {"webhook": "ci", "host": "hooks.example.com", "fields": ["url", "secret", "headers"]}
    assert paused.data == {"webhook": "ci", "host": "hooks.example.com", "active": False}
    recorded = str(list(AuditEvent.objects.values_list("data", flat=True)))
    assert "n3w-s3cret-value" not in recorded and "header-value-1" not in recorded


def test_a_webhook_saved_unchanged_records_nothing(alice, alice_repo):
    hook = webhook_create(repository=alice_repo, name="ci", url="https://hooks.example.com/a", events=["push"],
                          user=alice)
    webhook_update(webhook=hook)
    assert events(alice_repo.namespace, "webhook.update") == []


def test_build_sources_linked_rotated_and_unlinked_are_recorded(alice, alice_repo):
    source, _ = build_source_link(repository=alice_repo, url="https://git.example.com/alice/app.git", user=alice,
                                  webhook_secret="hook-secret-value")
    build_source_rotate_token(source=source)
    build_source_unlink(repository=alice_repo)
    assert [e.action for e in events(alice_repo.namespace, "build.source")] == [
        "build.source.link", "build.source.rotate_token", "build.source.unlink"]
    assert "hook-secret-value" not in str(list(AuditEvent.objects.values_list("data", flat=True)))


def test_build_rules_record_the_names_of_their_arguments_but_no_values_or_secrets(alice_repo):
    rule = build_rule_create(repository=alice_repo, source_type=constants.BRANCH, source="main",
                             docker_tag="latest", build_args={"VERSION": "1.2"}, secrets={"NPM_TOKEN": "npm-value"})
    build_rule_update(rule=rule, docker_tag="edge", build_args={"VERSION": "9.9-arg-value"})
    build_rule_delete(rule=rule)
    created, updated, deleted = events(alice_repo.namespace, "build.rule")
    assert (created.action, updated.action, deleted.action) == (
        "build.rule.create", "build.rule.update", "build.rule.delete")
    assert updated.data["docker_tag"] == "edge" and updated.data["build_args"] == ["VERSION"]
    assert "NPM_TOKEN" not in str(created.data)
    recorded = str(list(AuditEvent.objects.values_list("data", flat=True)))
    assert "npm-value" not in recorded and "9.9-arg-value" not in recorded
    assert not BuildRule.objects.filter(pk=rule.pk).exists()


def test_an_organizations_retention_policy_change_is_recorded(alice, org_account):
    from registry import retention

    policy = retention.policy_for_scope(namespace=org_account)
    retention.policy_save(policy=policy, user=alice, enabled=True, keep_last=None, keep_days=30,
                          include_patterns=[], exclude_patterns=[], untagged_days=7)
    [event] = events(org_account, "org.retention")
    assert (event.actor_name, event.data["keep_days"], event.data["untagged_days"]) == (alice.username, 30, 7)


def _registry_login(client, settings, username: str, password: str, address: str = "192.0.2.10") -> int:
    basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return client.get("/token", {"service": settings.REGISTRY_SERVICE}, HTTP_AUTHORIZATION=basic,
                      REMOTE_ADDR=address).status_code


def test_failed_sign_ins_at_the_registry_and_api_doors_are_recorded_for_existing_accounts(client, alice, settings):
    assert _registry_login(client, settings, alice.username, "wrong password") == 401
    assert _registry_login(client, settings, "nobody-at-all", "wrong password") == 401
    assert APIClient().post("/v2/users/login", {"username": alice.username, "password": "nope"},
                            format="json").status_code == 401
    failed = events(Namespace.objects.get(user=alice), "account.login_failed")
    assert [(e.data["door"], e.address) for e in failed] == [("registry", "192.0.2.10"), ("api", "127.0.0.1")]
    assert AuditEvent.objects.filter(action="account.login_failed").count() == 2


def test_attempts_refused_by_the_throttle_write_no_event(client, alice, settings):
    settings.REGISTRY_AUTH_MAX_FAILURES = per_account = 4
    statuses = [_registry_login(client, settings, alice.username, "wrong password", f"192.0.2.{n}")
                for n in range(per_account + 5)]
    assert statuses.count(429) == 5, statuses
    assert len(events(Namespace.objects.get(user=alice), "account.login_failed")) == per_account
