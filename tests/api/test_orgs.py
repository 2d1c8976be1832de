"""/v2/orgs/<org>/, its members, its teams (groups) and their members."""

import pytest

from accounts.models import Membership, Team
from tests.api.conftest import auth
from tests.factories import UserFactory


def test_anyone_sees_an_organization(api, org):
    for path in (f"/v2/orgs/{org.name}/", f"/v2/orgs/{org.name}"):
        body = api.get(path).json()
        assert body["orgname"] == org.name and body["type"] == "Organization"


def test_unknown_organization_is_404(api, db):
    assert api.get("/v2/orgs/nosuchorg/").status_code == 404


def test_member_lists_members(api, org):
    body = api.get(f"/v2/orgs/{org.name}/members", **auth(org.members["read"])).json()
    assert body["count"] == 4


def test_stranger_cannot_list_members(api, charlie, org):
    assert api.get(f"/v2/orgs/{org.name}/members/", **auth(charlie)).status_code == 403


def test_anonymous_member_list_is_401(api, org):
    assert api.get(f"/v2/orgs/{org.name}/members/").status_code == 401


def test_member_lists_teams(api, org):
    body = api.get(f"/v2/orgs/{org.name}/groups", **auth(org.members["write"])).json()
    assert {t["name"] for t in body["results"]} == {"owners", "readers", "writers", "admins"}


def test_stranger_cannot_list_teams(api, charlie, org):
    assert api.get(f"/v2/orgs/{org.name}/groups/", **auth(charlie)).status_code == 403


def test_owner_creates_a_team(api, alice, org):
    response = api.post(f"/v2/orgs/{org.name}/groups", {"name": "ops", "description": "on call"}, format="json",
                        **auth(alice))
    assert response.status_code == 201
    assert response.json()["name"] == "ops"


def test_member_cannot_create_a_team(api, org):
    response = api.post(f"/v2/orgs/{org.name}/groups/", {"name": "ops"}, format="json",
                        **auth(org.members["admin"]))
    assert response.status_code == 403


def test_duplicate_team_name_is_a_field_error(api, alice, org):
    response = api.post(f"/v2/orgs/{org.name}/groups", {"name": "readers"}, format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_team_detail(api, org):
    body = api.get(f"/v2/orgs/{org.name}/groups/readers", **auth(org.members["read"])).json()
    assert body["name"] == "readers" and body["member_count"] == 1


def test_owner_deletes_a_team(api, alice, org):
    assert api.delete(f"/v2/orgs/{org.name}/groups/readers/", **auth(alice)).status_code == 204
    assert not Team.objects.filter(pk=org.teams["read"].pk).exists()


def test_owners_team_cannot_be_deleted(api, alice, org):
    assert api.delete(f"/v2/orgs/{org.name}/groups/owners", **auth(alice)).status_code == 400


def test_team_members_list(api, org):
    body = api.get(f"/v2/orgs/{org.name}/groups/readers/members", **auth(org.members["read"])).json()
    assert [m["username"] for m in body["results"]] == [org.members["read"].username]


def test_owner_adds_a_member(api, alice, org):
    newcomer = UserFactory()
    response = api.post(f"/v2/orgs/{org.name}/groups/readers/members/", {"member": newcomer.username},
                        format="json", **auth(alice))
    assert response.status_code == 201
    assert Membership.objects.filter(team=org.teams["read"], user=newcomer).exists()


def test_adding_an_unknown_user_is_a_field_error(api, alice, org):
    response = api.post(f"/v2/orgs/{org.name}/groups/readers/members", {"member": "nobody123"}, format="json",
                        **auth(alice))
    assert list(response.json()) == ["member"]


def test_member_cannot_add_members(api, charlie, org):
    response = api.post(f"/v2/orgs/{org.name}/groups/readers/members", {"member": charlie.username},
                        format="json", **auth(org.members["read"]))
    assert response.status_code == 403


def test_owner_removes_a_member(api, alice, org):
    reader = org.members["read"]
    response = api.delete(f"/v2/orgs/{org.name}/groups/readers/members/{reader.username}/", **auth(alice))
    assert response.status_code == 204
    assert not Membership.objects.filter(team=org.teams["read"], user=reader).exists()


def test_last_owner_cannot_be_removed(api, alice, org):
    response = api.delete(f"/v2/orgs/{org.name}/groups/owners/members/{alice.username}", **auth(alice))
    assert response.status_code == 400


@pytest.mark.parametrize("scope", ["repo:read", "repo:write"])
def test_limited_access_token_cannot_change_teams(api, alice, org, scope):
    from accounts.services import access_token_create

    token, _ = access_token_create(user=alice, label="ci", scope=scope)
    response = api.post(f"/v2/orgs/{org.name}/groups", {"name": "ops"}, format="json", **auth(alice, token))
    assert response.status_code == 403
