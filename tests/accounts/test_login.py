"""Login by username or email, logout, throttling."""

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from tests.conftest import PASSWORD


def current_user(client):
    return client.get(reverse("home")).context["user"]


@pytest.mark.django_db
def test_login_page_renders(client):
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    assert b'<label for="id_login">' in response.content


@pytest.mark.django_db
def test_login_by_username(client, alice):
    response = client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    assert response.status_code == 302
    assert current_user(client) == alice


@pytest.mark.django_db
def test_login_by_email(client, alice):
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=True)
    response = client.post(reverse("account_login"), {"login": alice.email, "password": PASSWORD})
    assert response.status_code == 302
    assert current_user(client) == alice


@pytest.mark.django_db
def test_login_wrong_password_says_so_and_keeps_login(client, alice):
    response = client.post(reverse("account_login"), {"login": alice.username, "password": "wrong-password"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The username and/or password you specified are not correct."
    ]
    assert f'value="{alice.username}"'.encode() in response.content
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_inactive_user_cannot_log_in(client, alice):
    alice.is_active = False
    alice.save()
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_logout(client, alice):
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_login_throttled_after_repeated_failures(client, alice):
    for _ in range(10):  # accounts.throttles: 10 per account per 5 minutes, across every door
        client.post(reverse("account_login"), {"login": alice.username, "password": "wrong-password"})
    response = client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.context["form"].non_field_errors() == ["Too many failed login attempts. Try again later."]
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_signed_out_navigation_offers_sign_in_and_sign_up(client):
    html = client.get(reverse("home")).content.decode()
    assert 'href="/accounts/login/"' in html
    assert 'href="/accounts/signup/"' in html
    assert 'action="/search"' in html


@pytest.mark.django_db
def test_signed_in_navigation_has_user_menu(client, alice):
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    for url in ["/settings", "/settings/tokens", f"/u/{alice.username}", "/orgs", "/accounts/logout/"]:
        assert f'"{url}"' in html, url
