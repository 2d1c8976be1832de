"""/repository/create: namespaces one may create in, and clear errors that keep the input."""

import pytest
from django.test import Client

from accounts.models import Membership, Namespace
from repositories.models import Repository
from tests.factories import make_organization, team
from tests.repositories.pages_support import personal_repo

pytestmark = pytest.mark.django_db


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_is_sent_to_login():
    response = Client().get("/repository/create")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_create_private_repository(alice):
    response = as_user(alice).post("/repository/create", {
        "namespace": alice.username, "name": "web-app", "description": "My app", "visibility": "private"})
    repo = Repository.objects.get(namespace__name=alice.username, name="web-app")
    assert repo.is_private and repo.description == "My app" and repo.created_by == alice
    assert response["Location"] == f"/r/{alice.username}/web-app"


def test_namespace_choices_are_own_and_creatable_orgs(alice, bob):
    creating = make_organization(alice)
    viewing = make_organization(bob)
    Membership.objects.create(team=team(viewing), user=alice)  # a team without the create right
    choices = [value for value, _ in as_user(alice).get("/repository/create").context["form"].fields[
        "namespace"].choices]
    assert choices == sorted([alice.username, creating.name])


def test_create_in_organization(alice):
    organization = make_organization(alice)
    as_user(alice).post("/repository/create", {"namespace": organization.name, "name": "svc", "visibility": "public"})
    assert Repository.objects.filter(namespace=Namespace.objects.get(organization=organization), name="svc").exists()


def test_cannot_create_in_someone_elses_namespace(alice, bob):
    response = as_user(alice).post("/repository/create",
                                   {"namespace": bob.username, "name": "x1", "visibility": "public"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Repository.objects.filter(name="x1").exists()


def test_taken_name_error_keeps_input(alice):
    personal_repo(alice, name="taken")
    response = as_user(alice).post("/repository/create", {
        "namespace": alice.username, "name": "taken", "description": "keep me", "visibility": "public"})
    assert response.status_code == 400
    html = response.content.decode()
    assert f"{alice.username}/taken already exists." in html
    assert 'value="keep me"' in html and 'value="taken"' in html


@pytest.mark.parametrize(("name", "message"), [
    ("Bad", "Use lowercase letters only."),
    ("no spaces", "Use lowercase letters, digits and single separators"),
    ("-dash", "Use lowercase letters, digits and single separators"),
    ("a", "2–255 characters"),
    ("library", "is reserved"),
])
def test_invalid_and_reserved_names(alice, name, message):
    response = as_user(alice).post("/repository/create", {"namespace": alice.username, "name": name,
                                                         "visibility": "public"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()


def test_description_limit(alice):
    response = as_user(alice).post("/repository/create", {"namespace": alice.username, "name": "okname",
                                                         "description": "d" * 101, "visibility": "public"})
    assert response.status_code == 400 and "at most 100 characters" in response.content.decode()


def test_staff_may_create_official_images(staff, alice):
    assert "library" in [v for v, _ in as_user(staff).get("/repository/create").context["form"].fields[
        "namespace"].choices]
    assert "library" not in [v for v, _ in as_user(alice).get("/repository/create").context["form"].fields[
        "namespace"].choices]
    response = as_user(staff).post("/repository/create", {"namespace": "library", "name": "busybox",
                                                         "visibility": "public"})
    assert response["Location"] == "/_/busybox"
