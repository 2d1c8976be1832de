"""Sign-up: usernames are namespaces; every refusal is specific and creates nothing."""

import pytest
from django.urls import reverse

from accounts.models import Namespace, User
from accounts.services import user_delete
from tests.factories import make_organization

GOOD_PASSWORD = "correct-horse-battery"


def signup(client, username="newperson1", email="new@example.com", password=GOOD_PASSWORD, password2=None):
    return client.post(
        reverse("account_signup"),
        {"username": username, "email": email, "password1": password, "password2": password2 or password},
    )


def username_errors(response):
    return response.context["form"].errors.get("username", [])


@pytest.mark.django_db
def test_signup_page_renders_labelled_fields(client):
    response = client.get(reverse("account_signup"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">' in html
    assert '<label for="id_email">' in html


@pytest.mark.django_db
def test_signup_creates_user_namespace_and_signs_in(client):
    response = signup(client)
    assert response.status_code == 302
    user = User.objects.get(username="newperson1")
    assert Namespace.objects.get(name="newperson1").user == user
    assert client.get(reverse("home")).context["user"] == user


@pytest.mark.django_db
def test_signup_refuses_taken_username(client, alice):
    response = signup(client, username=alice.username)
    assert username_errors(response) == ["A user with that username already exists."]
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_signup_refuses_organization_name(client, alice):
    organization = make_organization(alice)
    response = signup(client, username=organization.name)
    assert username_errors(response) == [f"“{organization.name}” is already taken. Please choose another name."]
    assert not User.objects.filter(username=organization.name).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["library", "admin", "search", "explore"])
def test_signup_refuses_reserved_name(client, name):
    response = signup(client, username=name)
    assert username_errors(response) == [f"“{name}” is reserved. Please choose another name."]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_refuses_v2_which_is_too_short_and_reserved(client):
    response = signup(client, username="v2")
    assert username_errors(response) == ["Ensure this value has at least 4 characters (it has 2)."]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_refuses_tombstoned_name(client, alice):
    name = alice.username
    user_delete(user=alice)
    response = signup(client, username=name)
    assert username_errors(response) == [
        f"“{name}” belonged to a deleted account and cannot be reused. Please choose another name."
    ]
    assert not User.objects.filter(username=name).exists()


@pytest.mark.django_db
def test_signup_refuses_uppercase(client):
    response = signup(client, username="Newperson1")
    assert username_errors(response) == ["Use lowercase letters only."]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_refuses_too_short(client):
    response = signup(client, username="abc")
    assert username_errors(response) == ["Ensure this value has at least 4 characters (it has 3)."]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_refuses_punctuation(client):
    response = signup(client, username="new_person")
    assert username_errors(response) == ["Use only lowercase letters (a–z) and digits (0–9)."]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_signup_refuses_weak_password(client):
    response = signup(client, password="password")
    assert response.context["form"].errors["password1"] == [
        "This password is too short. It must contain at least 9 characters.",
        "This password is too common.",
    ]
    assert not User.objects.exists()
    assert not Namespace.objects.filter(name="newperson1").exists()


@pytest.mark.django_db
def test_signup_keeps_input_and_shows_error_next_to_field(client):
    response = signup(client, username="Newperson1", email="keep@example.com")
    html = response.content.decode()
    assert 'value="keep@example.com"' in html
    assert 'id="id_username_error"' in html
    assert "field-invalid" in html


@pytest.mark.django_db
def test_signup_refuses_duplicate_email(client, alice):
    response = signup(client, email=alice.email)
    assert response.context["form"].errors["email"] == ["A user is already registered with this email address."]
    assert not User.objects.filter(username="newperson1").exists()


@pytest.mark.django_db
def test_signup_closed(client, settings):
    settings.HUB_SIGNUP_OPEN = False
    response = signup(client)
    assert "the sign up is currently closed" in response.content.decode()
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/explore"])
def test_no_page_offers_a_closed_sign_up(client, settings, path):
    signup_url = reverse("account_signup")
    assert f'href="{signup_url}' in client.get(path).content.decode()  # open: offered
    settings.HUB_SIGNUP_OPEN = False
    assert f'href="{signup_url}' not in client.get(path).content.decode()
