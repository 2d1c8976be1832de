"""Sign-up says the username rules before the first submit, and the confirmation email greets with the
site's name (HUB_SITE_NAME), not the server's host:port."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.forms import USERNAME_RULES

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def test_the_signup_page_shows_the_username_rules_before_any_submit(client):
    html = client.get(reverse("account_signup")).content.decode()
    assert "4–30 lowercase letters (a–z) and digits (0–9)" in html and USERNAME_RULES.startswith("4–30")


def test_a_refused_signup_keeps_the_username_and_email(client):
    response = client.post(reverse("account_signup"), {"username": "Bad Name", "email": "keep@example.com",
                                                       "password1": PASSWORD, "password2": PASSWORD})
    html = response.content.decode()
    assert response.status_code == 200 and 'value="Bad Name"' in html and 'value="keep@example.com"' in html


def test_the_confirmation_email_greets_with_the_site_name(client, settings):
    settings.HUB_SITE_NAME = "Acme Images"
    client.post(reverse("account_signup"), {"username": "greeted1", "email": "greet@example.com",
                                            "password1": PASSWORD, "password2": PASSWORD})
    [message] = mail.outbox
    assert "Hello from Acme Images!" in message.body and "Hello from testserver" not in message.body
