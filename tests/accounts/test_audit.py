"""The audit log: what is recorded at every door, who may read it, Docker Hub's API, the CSV."""

import base64
import csv
import datetime as dt
import io

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import audit
from accounts.models import AuditEvent, Namespace
from accounts.services import access_token_create, access_token_revoke, team_add_member
from repositories.models import Repository
from repositories.services import (
    collaborator_add,
    repository_create,
    repository_delete,
    repository_set_immutable_tags,
    repository_update,
)
from tests.api.conftest import auth
from tests.conftest import PASSWORD
from tests.factories import make_organization, team
from tests.registry.helpers import pull_push, push_image
from webhooks.services import webhook_create

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def actions(account: Namespace) -> list[str]:
    return list(AuditEvent.objects.filter(account=account).order_by("pk").values_list("action", flat=True))


@pytest.fixture
def api():
    return APIClient()


def test_repository_changes_are_recorded_with_their_actor(alice, alice_namespace):
    with audit.audit_context(address="198.51.100.7"):
        repository = repository_create(namespace=alice_namespace, name="tool", user=alice)
        repository_update(repository=repository, is_private=True)
        repository_update(repository=repository, description="a tool")
        repository_set_immutable_tags(repository=repository, enabled=True, rules=["v.*"])
        repository_delete(repository=repository, user=alice)
    assert actions(alice_namespace) == ["repo.create", "repo.change_privacy", "repo.update", "repo.immutable_tags",
                                        "repo.delete"]
    created = AuditEvent.objects.filter(action="repo.create").get()
    assert (created.name, created.actor_name, created.address) == (f"{alice.username}/tool", alice.username,
                                                                   "198.51.100.7")
    assert AuditEvent.objects.get(action="repo.immutable_tags").data == {"enabled": True, "rules": ["v.*"]}


def test_tag_pushes_and_deletes_are_recorded(client, alice, alice_namespace):
    name = f"{alice.username}/app"
    push_image(client, name, pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:], tag="v1")
    headers = pull_push(client, alice, name, "pull,push,delete")  # delete is granted on what exists
    deleted = client.delete(f"/v2/{name}/manifests/v1", **headers)
    assert deleted.status_code == 202, deleted.content
    pushed = AuditEvent.objects.get(action="repo.tag.push")
    assert (pushed.name, pushed.actor_name) == (f"{name}:v1", alice.username)
    assert pushed.data["digest"].startswith("sha256:")
    assert AuditEvent.objects.filter(action="repo.tag.delete", name=f"{name}:v1").exists()


def test_an_organizations_changes_go_to_its_log_and_tokens_to_the_persons(alice, bob):
    organization = make_organization(alice)
    crew = team(organization, "crew")
    team_add_member(team=crew, username=bob.username)
    token, secret = access_token_create(user=alice, label="ci", scope="repo:read")
    access_token_revoke(token=token)
    org_account = Namespace.objects.get(organization=organization)
    assert actions(org_account) == ["org.create", "org.member.add"]
    assert actions(Namespace.objects.get(user=alice)) == ["access_token.create", "access_token.revoke"]
    assert secret not in str(list(AuditEvent.objects.values_list("data", flat=True)))


def test_secrets_and_url_credentials_are_never_recorded(alice, alice_repo):
    webhook_create(repository=alice_repo, name="ci", url="https://hooks.example.com/p/secret-path",
                   events=["push"], secret="s3cret-value", user=alice)
    event = AuditEvent.objects.get(action="webhook.create")
    text = str(event.data)
    assert "s3cret-value" not in text and "secret-path" not in text
    assert event.data["host"] == "hooks.example.com"
    assert audit._clean({"url": "https://a:b@x.example/y", "api_token": "t"}) == {"url": "https://x.example/y"}


def test_a_change_that_fails_leaves_no_event(alice_repo, bob):
    with pytest.raises(Exception, match="already a collaborator"):
        collaborator_add(repository=alice_repo, username=bob.username)
    assert not AuditEvent.objects.filter(action="repo.collaborator.add").exists()


def test_web_sign_ins_and_failures_of_existing_accounts_only(alice):
    web = Client()
    assert not web.login(username=alice.username, password="wrong password")
    assert not web.login(username="nobody-at-all", password="wrong password")
    assert web.login(username=alice.username, password=PASSWORD)
    assert actions(Namespace.objects.get(user=alice)) == ["account.login_failed", "account.login"]
    assert AuditEvent.objects.count() == 2


def test_a_registry_password_login_is_recorded_once_per_day_and_address(client, alice, settings):
    basic = "Basic " + base64.b64encode(f"{alice.username}:{PASSWORD}".encode()).decode()
    for _ in range(3):
        assert client.get("/token", {"service": settings.REGISTRY_SERVICE}, HTTP_AUTHORIZATION=basic).status_code == 200
    client.get("/token", {"service": settings.REGISTRY_SERVICE}, HTTP_AUTHORIZATION=basic, REMOTE_ADDR="192.0.2.9")
    assert actions(Namespace.objects.get(user=alice)) == ["account.registry_login", "account.registry_login"]


def test_an_api_login_is_recorded(api, alice):
    response = api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="account.login").data == {"door": "api"}


def test_owners_read_their_organizations_log_and_nobody_else(api, alice, bob, charlie):
    organization = make_organization(alice)
    team_add_member(team=team(organization, "crew"), username=bob.username)
    url = f"/v2/auditlogs/{organization.name}"
    body = api.get(url, **auth(alice)).json()
    assert [log["action"] for log in body["logs"]] == ["org.member.add", "org.create"]
    assert set(body["logs"][0]) == {"account", "action", "action_description", "actor", "data", "name", "timestamp"}
    assert api.get(url, **auth(bob)).status_code == 404  # a member, not an owner
    assert api.get(url, **auth(charlie)).status_code == 404
    assert api.get(f"/v2/auditlogs/{alice.username}", **auth(bob)).status_code == 404
    assert api.get(url).status_code == 401


def test_sign_ins_and_addresses_never_show_in_an_organizations_log(api, alice):
    organization = make_organization(alice)
    org_account = Namespace.objects.get(organization=organization)
    audit.record("account.login", account=org_account, name="x", actor=alice, address="203.0.113.5")
    with audit.audit_context(address="203.0.113.6"):
        repository_create(namespace=org_account, name="svc", user=alice)
    logs = api.get(f"/v2/auditlogs/{organization.name}", **auth(alice)).json()["logs"]
    assert [log["action"] for log in logs] == ["repo.create", "org.create"]
    assert "203.0.113" not in str(logs)
    api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json")
    own = api.get(f"/v2/auditlogs/{alice.username}", **auth(alice)).json()["logs"]
    assert own[0]["action"] == "account.login" and "address" in own[0]["data"]


def test_filters_narrow_the_log(api, alice, alice_namespace):
    for name in ("one", "two"):
        repository_create(namespace=alice_namespace, name=name, user=alice)
    AuditEvent.objects.filter(name__endswith="/one").update(timestamp=timezone.now() - dt.timedelta(days=10))
    url = f"/v2/auditlogs/{alice.username}"

    def names(**params):
        return [log["name"] for log in api.get(url, params, **auth(alice)).json()["logs"]]

    assert names(name="two") == [f"{alice.username}/two"]
    assert names(action="repo.create", to=(timezone.now() - dt.timedelta(days=5)).date().isoformat()) == [
        f"{alice.username}/one"]
    assert names(actor="somebody-else") == []
    assert api.get(url, {"from": "yesterday"}, **auth(alice)).status_code == 400
    listed = api.get(f"{url}/actions", **auth(alice)).json()["actions"]
    assert {"name": "repo.tag.push", "description": "Tag pushed", "label": "Tag pushed"} in listed["repo"]["actions"]


def test_the_activity_tab_and_its_csv_neutralize_formulas(alice, alice_namespace):
    repository_create(namespace=alice_namespace, name="calc", user=alice)
    AuditEvent.objects.filter(action="repo.create").update(name="=HYPERLINK(\"http://evil\")")
    web = Client()
    web.force_login(alice)
    page = web.get("/settings/activity")
    assert page.status_code == 200 and "Repository created" in page.content.decode()
    exported = web.get("/settings/activity", {"format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == ["timestamp", "action", "action_description", "name", "actor", "data"]
    created = next(row for row in rows if row[1] == "repo.create")
    assert created[3].startswith("'=")


def test_an_organizations_activity_tab_is_for_its_owners(alice, bob):
    organization = make_organization(alice)
    team_add_member(team=team(organization, "crew"), username=bob.username)
    owner, member = Client(), Client()
    owner.force_login(alice)
    member.force_login(bob)
    assert "Member added to a team" in owner.get(f"/orgs/{organization.name}/activity").content.decode()
    assert member.get(f"/orgs/{organization.name}/activity").status_code == 404


def test_old_events_are_pruned(alice_namespace, settings):
    settings.HUB_AUDIT_RETENTION_DAYS = 30
    audit.record("repo.create", account=alice_namespace, name="old")
    audit.record("repo.create", account=alice_namespace, name="new")
    AuditEvent.objects.filter(name="old").update(timestamp=timezone.now() - dt.timedelta(days=31))
    assert audit.prune() == 1
    assert list(AuditEvent.objects.values_list("name", flat=True)) == ["new"]


def test_retention_policy_changes_are_recorded(alice, alice_repo):
    from registry import retention

    policy = retention.policy_for_scope(repository=alice_repo)
    retention.policy_save(policy=policy, user=alice, enabled=True, keep_last=3, keep_days=None,
                          include_patterns=[], exclude_patterns=[], untagged_days=None)
    assert AuditEvent.objects.get(action="repo.retention").data["keep_last"] == 3
    assert Repository.objects.filter(pk=alice_repo.pk).exists()
