"""CSRF protection is enforced on every form post."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AccessToken, Organization


@pytest.mark.django_db
def test_login_post_without_token_refused(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("account_login"), {"login": alice.username, "password": "x"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_token_create_without_csrf_token_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("accounts:token_list"), {"label": "x", "scope": "repo:read"})
    assert response.status_code == 403
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_org_create_without_csrf_token_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("accounts:org_create"), {"name": "acmecorp"})
    assert response.status_code == 403
    assert not Organization.objects.exists()
