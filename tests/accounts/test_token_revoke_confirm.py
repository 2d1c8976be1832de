"""Revoking an access token asks first (a page naming the token and its last use; works without JS), the
revocation itself stays a CSRF-protected POST; the token and two-factor pages say the CLI needs a token
once two-factor authentication is on."""

import re
from datetime import timedelta

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessToken
from accounts.services import access_token_create

pytestmark = pytest.mark.django_db


def revoke_url(token):
    return reverse("accounts:token_revoke", kwargs={"pk": token.pk})


def test_the_list_links_to_a_confirmation_instead_of_revoking_in_one_click(client, alice):
    token, _ = access_token_create(user=alice, label="laptop", scope="repo:write")
    client.force_login(alice)
    html = client.get(reverse("accounts:token_list")).content.decode()
    assert f'href="{revoke_url(token)}"' in html
    assert not re.search(rf'<form[^>]*action="{re.escape(revoke_url(token))}"', html)


def test_confirmation_names_the_token_and_its_last_use(client, alice):
    token, _ = access_token_create(user=alice, label="laptop", scope="repo:write")
    used = timezone.now() - timedelta(days=3)
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=used)
    client.force_login(alice)
    response = client.get(revoke_url(token))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Revoke the token “laptop”?" in html and f"…{token.token_hint}" in html
    assert "3 days ago" in html and used.strftime("%Y") in html
    assert re.search(rf'<form method="post" action="{re.escape(revoke_url(token))}">\s*<input type="hidden" '
                     r'name="csrfmiddlewaretoken"', html)
    token.refresh_from_db()
    assert token.revoked_at is None  # asking revokes nothing


def test_confirmation_of_a_never_used_token_says_so(client, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(alice)
    html = client.get(revoke_url(token)).content.decode()
    assert "Never: no client has signed in with it yet." in html


def test_confirming_revokes(client, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(alice)
    response = client.post(revoke_url(token))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:token_list")
    token.refresh_from_db()
    assert token.revoked_at is not None
    # a revoked token has nothing left to confirm
    assert client.get(revoke_url(token))["Location"] == reverse("accounts:token_list")


def test_the_post_still_needs_the_csrf_token(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(revoke_url(token)).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_someone_elses_token_has_no_confirmation_page(client, alice, charlie):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(charlie)
    assert client.get(revoke_url(token)).status_code == 404


def test_token_page_says_the_cli_needs_a_token_once_2fa_is_on(client, alice):
    client.force_login(alice)
    html = client.get(reverse("accounts:token_list")).content.decode()
    assert "Once two-factor authentication is on" in html
    assert "<code>docker login</code>" in html and "<code>podman login</code>" in html


def test_two_factor_page_says_the_cli_needs_a_token(client, alice):
    client.force_login(alice)
    html = client.get(reverse("mfa_index")).content.decode()
    assert 'data-testid="cli-needs-token"' in html and "Once two-factor authentication is on" in html
    assert "<code>podman login</code>" in html and f'href="{reverse("accounts:token_list")}"' in html
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    RecoveryCodes.activate(alice)
    client = Client()
    client.force_login(alice)
    html = client.get(reverse("mfa_index")).content.decode()
    assert "<strong>Two-factor authentication is on.</strong>" in html
    assert "<code>docker login</code>" in html and "access token</a> instead of your password" in html
