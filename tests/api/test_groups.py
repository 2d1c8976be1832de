"""/v2/repositories/<ns>/<repo>/groups: team permissions on organization repositories."""

import pytest

from repositories.models import TeamPermission
from tests.api.conftest import auth
from tests.factories import team


def test_owner_lists_team_permissions(api, alice, org):
    body = api.get(f"/v2/repositories/{org.name}/service/groups", **auth(alice)).json()
    assert {(g["group_name"], g["permission"]) for g in body["results"]} == {
        ("readers", "read"), ("writers", "write"), ("admins", "admin")}


def test_team_admin_lists_team_permissions(api, org):
    response = api.get(f"/v2/repositories/{org.name}/service/groups/", **auth(org.members["admin"]))
    assert response.status_code == 200


@pytest.mark.parametrize("level", ["read", "write"])
def test_team_read_or_write_cannot_list(api, org, level):
    response = api.get(f"/v2/repositories/{org.name}/service/groups", **auth(org.members[level]))
    assert response.status_code == 403


def test_stranger_gets_404(api, charlie, org):
    assert api.get(f"/v2/repositories/{org.name}/service/groups", **auth(charlie)).status_code == 404


def test_grant_by_team_name(api, alice, org):
    newcomers = team(org.organization, name="newcomers")
    response = api.post(f"/v2/repositories/{org.name}/service/groups",
                        {"group_name": "newcomers", "permission": "write"}, format="json", **auth(alice))
    assert response.status_code == 200
    assert TeamPermission.objects.get(team=newcomers).permission == "write"


def test_grant_by_team_id_replaces_the_permission(api, alice, org):
    response = api.post(f"/v2/repositories/{org.name}/service/groups/",
                        {"group_id": org.teams["read"].pk, "permission": "admin"}, format="json", **auth(alice))
    assert response.json()["permission"] == "admin"


def test_unknown_team_is_a_field_error(api, alice, org):
    response = api.post(f"/v2/repositories/{org.name}/service/groups",
                        {"group_name": "ghosts", "permission": "read"}, format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["group_name"]


def test_bad_permission_is_a_field_error(api, alice, org):
    response = api.post(f"/v2/repositories/{org.name}/service/groups",
                        {"group_name": "readers", "permission": "owner"}, format="json", **auth(alice))
    assert list(response.json()) == ["permission"]


def test_team_write_cannot_grant(api, org):
    response = api.post(f"/v2/repositories/{org.name}/service/groups",
                        {"group_name": "readers", "permission": "admin"}, format="json",
                        **auth(org.members["write"]))
    assert response.status_code == 403


def test_revoke_a_team(api, alice, org):
    assert api.delete(f"/v2/repositories/{org.name}/service/groups/readers/", **auth(alice)).status_code == 204
    assert api.get(f"/v2/repositories/{org.name}/service/", **auth(org.members["read"])).status_code == 404


def test_revoke_unknown_team_is_404(api, alice, org):
    assert api.delete(f"/v2/repositories/{org.name}/service/groups/ghosts", **auth(alice)).status_code == 404


def test_personal_repository_has_no_groups(api, alice, alice_repo):
    body = api.get(f"/v2/repositories/{alice.username}/app/groups", **auth(alice)).json()
    assert body["count"] == 0
