"""/v2/repositories/<ns>/<repo>/collaborators/: admins list, add and remove collaborators."""

from repositories.models import Collaborator
from tests.api.conftest import auth


def test_owner_lists_collaborators(api, alice, bob, alice_repo):
    for path in (f"/v2/repositories/{alice.username}/app/collaborators/",
                 f"/v2/repositories/{alice.username}/app/collaborators"):
        body = api.get(path, **auth(alice)).json()
        assert [c["user"] for c in body["results"]] == [bob.username]


def test_collaborator_cannot_list_collaborators(api, alice, bob, alice_repo):
    assert api.get(f"/v2/repositories/{alice.username}/app/collaborators/", **auth(bob)).status_code == 403


def test_anonymous_list_is_401(api, alice, alice_repo):
    assert api.get(f"/v2/repositories/{alice.username}/app/collaborators/").status_code == 401


def test_stranger_on_private_repository_is_404(api, alice, charlie, alice_private):
    response = api.get(f"/v2/repositories/{alice.username}/secret/collaborators/", **auth(charlie))
    assert response.status_code == 404


def test_owner_adds_a_collaborator(api, alice, charlie, alice_repo):
    response = api.post(f"/v2/repositories/{alice.username}/app/collaborators", {"user": charlie.username},
                        format="json", **auth(alice))
    assert response.status_code == 201
    assert response.json()["user"] == charlie.username
    assert Collaborator.objects.filter(repository=alice_repo, user=charlie).exists()


def test_added_collaborator_sees_the_private_repository(api, alice, charlie, alice_private):
    api.post(f"/v2/repositories/{alice.username}/secret/collaborators/", {"user": charlie.username},
             format="json", **auth(alice))
    assert api.get(f"/v2/repositories/{alice.username}/secret/", **auth(charlie)).status_code == 200


def test_unknown_user_is_a_field_error(api, alice, alice_repo):
    response = api.post(f"/v2/repositories/{alice.username}/app/collaborators/", {"user": "nobody123"},
                        format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["user"]


def test_missing_user_is_a_field_error(api, alice, alice_repo):
    response = api.post(f"/v2/repositories/{alice.username}/app/collaborators/", {}, format="json", **auth(alice))
    assert response.json() == {"user": ["This field is required."]}


def test_collaborator_cannot_add_collaborators(api, alice, bob, charlie, alice_repo):
    response = api.post(f"/v2/repositories/{alice.username}/app/collaborators/", {"user": charlie.username},
                        format="json", **auth(bob))
    assert response.status_code == 403


def test_org_repositories_have_no_collaborators(api, alice, charlie, org):
    response = api.post(f"/v2/repositories/{org.name}/service/collaborators/", {"user": charlie.username},
                        format="json", **auth(alice))
    assert response.status_code == 400


def test_owner_removes_a_collaborator(api, alice, bob, alice_repo):
    for path in (f"/v2/repositories/{alice.username}/app/collaborators/{bob.username}/",):
        assert api.delete(path, **auth(alice)).status_code == 204
    assert not Collaborator.objects.filter(repository=alice_repo).exists()


def test_removing_a_non_collaborator_is_404(api, alice, charlie, alice_repo):
    response = api.delete(f"/v2/repositories/{alice.username}/app/collaborators/{charlie.username}",
                          **auth(alice))
    assert response.status_code == 404
