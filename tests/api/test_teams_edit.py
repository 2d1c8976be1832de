"""PATCH /v2/orgs/<org>/groups/<team>/: owners rename a team or change its description."""

import pytest

from accounts.models import Team
from accounts.services import access_token_create
from tests.api.conftest import auth


@pytest.mark.parametrize("suffix", ["/", ""])
def test_owner_renames_a_team(api, alice, org, suffix):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers{suffix}", {"name": "viewers"}, format="json",
                         **auth(alice))
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "viewers"
    assert Team.objects.get(pk=org.teams["read"].pk).name == "viewers"


def test_renamed_team_is_found_under_its_new_name(api, alice, org):
    api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json", **auth(alice))
    assert api.get(f"/v2/orgs/{org.name}/groups/viewers/", **auth(alice)).json()["member_count"] == 1
    assert api.get(f"/v2/orgs/{org.name}/groups/readers/", **auth(alice)).status_code == 404


def test_renamed_team_keeps_its_repository_permission(api, alice, org):
    api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json", **auth(alice))
    response = api.get(f"/v2/repositories/{org.name}/service/", **auth(org.members["read"]))
    assert response.status_code == 200


def test_owner_changes_the_description(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"description": "read-only"}, format="json",
                         **auth(alice))
    assert response.json()["description"] == "read-only"
    assert Team.objects.get(pk=org.teams["read"].pk).name == "readers"


def test_name_is_lowercased(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "Viewers"}, format="json",
                         **auth(alice))
    assert response.json()["name"] == "viewers"


def test_keeping_the_same_name_is_not_a_conflict(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "readers", "description": "r"},
                         format="json", **auth(alice))
    assert response.status_code == 200


def test_empty_patch_changes_nothing(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {}, format="json", **auth(alice))
    assert response.status_code == 200
    assert response.json()["name"] == "readers"


def test_taken_name_is_a_field_error(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "writers"}, format="json",
                         **auth(alice))
    assert response.status_code == 400
    assert "already has a team" in response.json()["name"][0]


@pytest.mark.parametrize("name", ["new", "members", "settings", "delete"])
def test_reserved_name_is_a_field_error(api, alice, org, name):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": name}, format="json", **auth(alice))
    assert response.status_code == 400
    assert "reserved" in response.json()["name"][0]


@pytest.mark.parametrize("name", ["two words", "dots.here", "émigrés", "x" * 31, ""])
def test_invalid_name_is_a_field_error(api, alice, org, name):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": name}, format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_too_long_description_is_a_field_error(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"description": "x" * 256}, format="json",
                         **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["description"]


def test_owners_team_cannot_be_renamed(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/owners/", {"name": "bosses"}, format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert org.organization.teams.filter(name="owners").exists()


def test_owners_team_description_can_change(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/owners/", {"description": "the bosses"}, format="json",
                         **auth(alice))
    assert response.json()["description"] == "the bosses"


def test_owners_team_keeps_its_right_to_create_repositories(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/owners/", {"can_create_repositories": False},
                         format="json", **auth(alice))
    assert response.json()["can_create_repositories"] is True


def test_failed_rename_changes_nothing(api, alice, org):
    api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "writers", "description": "changed"},
              format="json", **auth(alice))
    assert Team.objects.get(pk=org.teams["read"].pk).description == ""


@pytest.mark.parametrize("level", ["read", "admin"])
def test_team_member_cannot_edit(api, org, level):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json",
                         **auth(org.members[level]))
    assert response.status_code == 403


def test_stranger_cannot_edit(api, charlie, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json",
                         **auth(charlie))
    assert response.status_code == 403


def test_stranger_cannot_tell_whether_a_team_exists(api, charlie, org):
    existing = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"description": "x"}, format="json",
                         **auth(charlie))
    missing = api.patch(f"/v2/orgs/{org.name}/groups/ghosts/", {"description": "x"}, format="json",
                        **auth(charlie))
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


def test_member_cannot_tell_whether_a_team_exists_by_editing(api, org):
    member = org.members["read"]
    existing = api.patch(f"/v2/orgs/{org.name}/groups/writers/", {}, format="json", **auth(member))
    missing = api.patch(f"/v2/orgs/{org.name}/groups/ghosts/", {}, format="json", **auth(member))
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


def test_staff_who_is_not_a_member_cannot_edit(api, staff, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json",
                         **auth(staff))
    assert response.status_code == 403


def test_anonymous_edit_is_401(api, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json")
    assert response.status_code == 401


def test_unknown_team_is_404_for_an_owner(api, alice, org):
    response = api.patch(f"/v2/orgs/{org.name}/groups/ghosts/", {"name": "viewers"}, format="json",
                         **auth(alice))
    assert response.status_code == 404


def test_unknown_organization_is_404(api, alice):
    response = api.patch("/v2/orgs/nosuchorg/groups/readers/", {"name": "viewers"}, format="json",
                         **auth(alice))
    assert response.status_code == 404


@pytest.mark.parametrize("scope", ["repo:read", "repo:write"])
def test_limited_access_token_cannot_edit(api, alice, org, scope):
    token, _ = access_token_create(user=alice, label="ci", scope=scope)
    response = api.patch(f"/v2/orgs/{org.name}/groups/readers/", {"name": "viewers"}, format="json",
                         **auth(alice, token))
    assert response.status_code == 403
