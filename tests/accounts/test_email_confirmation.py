"""Email confirmation: mandatory or optional by HUB_EMAIL_VERIFICATION (ACCOUNT_EMAIL_VERIFICATION)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import User

PASSWORD = "correct-horse-battery"


@pytest.fixture
def mandatory(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def signup(client):
    return client.post(
        reverse("account_signup"),
        {"username": "confirmme1", "email": "confirm@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )


def confirmation_link() -> str:
    assert len(mail.outbox) == 1
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", mail.outbox[0].body)
    assert match, mail.outbox[0].body
    return match.group(1)


@pytest.mark.django_db
def test_mandatory_signup_sends_mail_and_does_not_sign_in(client, mandatory):
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert mail.outbox[0].subject.startswith("[Wharf] ")
    assert mail.outbox[0].to == ["confirm@example.com"]
    assert not client.get(reverse("home")).context["user"].is_authenticated


@pytest.mark.django_db
def test_mandatory_login_before_confirmation_is_held(client, mandatory):
    signup(client)
    mail.outbox.clear()
    response = client.post(reverse("account_login"), {"login": "confirmme1", "password": PASSWORD})
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not client.get(reverse("home")).context["user"].is_authenticated


@pytest.mark.django_db
def test_confirmation_link_verifies_address(client, mandatory):
    signup(client)
    link = confirmation_link()
    page = client.get(link)
    assert page.status_code == 200
    assert "confirm@example.com" in page.content.decode()
    client.post(link)
    assert EmailAddress.objects.get(email="confirm@example.com").verified


@pytest.mark.django_db
def test_login_after_confirmation(client, mandatory):
    signup(client)
    client.post(confirmation_link())
    response = client.post(reverse("account_login"), {"login": "confirmme1", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("home")).context["user"].username == "confirmme1"


@pytest.mark.django_db
def test_optional_mode_signs_in_at_once_and_still_sends_mail(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    response = signup(client)
    assert response["Location"] == "/"
    assert len(mail.outbox) == 1
    assert client.get(reverse("home")).context["user"] == User.objects.get(username="confirmme1")
