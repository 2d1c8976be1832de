"""Password change (signed in) and reset (by email)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from tests.accounts.conftest import sign_in
from tests.conftest import PASSWORD

NEW_PASSWORD = "staple-orbit-lantern"


@pytest.mark.django_db
def test_password_change(alice_client, alice):
    response = alice_client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


@pytest.mark.django_db
def test_password_change_refuses_wrong_current_password(alice_client, alice):
    response = alice_client.post(
        reverse("account_change_password"),
        {"oldpassword": "not-my-password", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.context["form"].errors["oldpassword"] == ["Please type your current password."]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


@pytest.mark.django_db
def test_password_change_page_uses_settings_frame(alice_client):
    html = alice_client.get(reverse("account_change_password")).content.decode()
    assert 'aria-label="Account settings"' in html
    assert 'href="/accounts/password/change/" aria-current="page"' in html


@pytest.mark.django_db
def test_password_reset_by_email(client, alice):
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=True)
    response = client.post(reverse("account_reset_password"), {"email": alice.email})
    assert response.status_code == 302
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/[^\s]+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    sign_in(client, alice, NEW_PASSWORD)


@pytest.mark.django_db
def test_password_reset_for_unknown_email_sends_no_reset_link(client):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert all("/password/reset/key/" not in message.body for message in mail.outbox)
