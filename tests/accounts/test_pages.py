"""Home, dashboard, profiles, settings, error pages."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import user_deactivate, user_delete
from tests.factories import make_organization


@pytest.mark.django_db
def test_home_signed_out_explains_site_and_has_search(client):
    html = client.get(reverse("home")).content.decode()
    assert "Your own container hub" in html
    assert 'id="hero-q"' in html
    assert "Official images" in html
    assert "Most pulled" in html


@pytest.mark.django_db
def test_dashboard_lists_organizations_and_push_commands(client, alice, settings):
    organization = make_organization(alice)
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    assert f'href="/orgs/{organization.name}"' in html
    assert f"docker login {settings.HUB_PUBLIC_HOST}" in html
    assert f"docker push {settings.HUB_PUBLIC_HOST}/{alice.username}/app:latest" in html


@pytest.mark.django_db
def test_pages_link_the_stylesheet(client):
    assert b"css/wharf.css" in client.get(reverse("home")).content


@pytest.mark.django_db
def test_404_page_is_helpful(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We couldn’t find that page" in html
    assert "/no/such/page" in html


@pytest.mark.django_db
def test_500_page_renders(rf):
    from hub.views import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content


@pytest.mark.django_db
def test_user_profile(client, alice):
    alice.full_name = "Alice Example"
    alice.save()
    html = client.get(reverse("accounts:profile", kwargs={"name": alice.username})).content.decode()
    assert "Alice Example" in html
    assert "Joined" in html
    assert "No public repositories to show yet" in html


@pytest.mark.django_db
def test_organization_profile_lists_members(client, alice):
    organization = make_organization(alice)
    html = client.get(reverse("accounts:profile", kwargs={"name": organization.name})).content.decode()
    assert "Organization" in html
    assert alice.username in html


@pytest.mark.django_db
def test_profile_of_unknown_name_is_404(client):
    assert client.get(reverse("accounts:profile", kwargs={"name": "nosuchname"})).status_code == 404


@pytest.mark.django_db
def test_profile_of_deleted_account_is_404(client, alice):
    name = alice.username
    user_delete(user=alice)
    assert client.get(reverse("accounts:profile", kwargs={"name": name})).status_code == 404


@pytest.mark.django_db
def test_profile_of_deactivated_account_is_404(client, alice):
    user_deactivate(user=alice)
    assert client.get(reverse("accounts:profile", kwargs={"name": alice.username})).status_code == 404


@pytest.mark.django_db
def test_settings_save_profile(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:settings"), {
        "full_name": "Alice Example", "company": "Acme", "location": "Lyon",
        "website": "https://alice.example", "default_private": "on",
    }, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Your profile has been saved."]
    alice.refresh_from_db()
    assert (alice.full_name, alice.default_private) == ("Alice Example", True)


@pytest.mark.django_db
def test_settings_invalid_website_keeps_input(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:settings"), {"full_name": "Kept", "website": "not a url"})
    assert response.context["form"].errors["website"] == ["Enter a valid URL."]
    assert b'value="Kept"' in response.content
    alice.refresh_from_db()
    assert alice.full_name == ""


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/settings", "/settings/tokens", "/settings/delete", "/orgs", "/orgs/new"])
def test_private_pages_require_login(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["account_email", "account_change_password", "mfa_index"])
def test_allauth_manage_pages_use_settings_frame(client, alice, name):
    from tests.accounts.conftest import reauthenticate, sign_in

    sign_in(client, alice)
    reauthenticate(client)
    html = client.get(reverse(name)).content.decode()
    assert 'aria-label="Account settings"' in html
    assert "css/wharf.css" in html
