"""Two-factor authentication: TOTP and recovery codes (allauth.mfa)."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value, yield_hotp_counters_from_time
from django.urls import reverse

from accounts.services import user_has_mfa
from tests.accounts.conftest import reauthenticate
from tests.conftest import PASSWORD


def totp_code(secret: str) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter))


def current_user(client):
    return client.get(reverse("home")).context["user"]


@pytest.fixture
def alice_with_totp(alice):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    TOTP.activate(alice, secret)
    RecoveryCodes.activate(alice)
    return alice, secret


@pytest.mark.django_db
def test_activation_page_shows_secret_and_qr(alice_client):
    response = alice_client.get(reverse("mfa_activate_totp"))
    secret = alice_client.session["mfa.totp.secret"]
    html = response.content.decode()
    assert f'value="{secret}"' in html
    assert 'class="qr"' in html


@pytest.mark.django_db
def test_activate_totp_with_code(alice_client, alice):
    alice_client.get(reverse("mfa_activate_totp"))
    secret = alice_client.session["mfa.totp.secret"]
    response = alice_client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert user_has_mfa(alice)
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.RECOVERY_CODES).exists()


@pytest.mark.django_db
def test_activate_totp_refuses_wrong_code(alice_client, alice):
    alice_client.get(reverse("mfa_activate_totp"))
    response = alice_client.post(reverse("mfa_activate_totp"), {"code": "000000"})
    assert response.context["form"].errors["code"] == ["Incorrect code."]
    assert not user_has_mfa(alice)


@pytest.mark.django_db
def test_login_with_totp_asks_for_code(client, alice_with_totp):
    alice, _ = alice_with_totp
    response = client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_login_with_totp_code(client, alice_with_totp):
    alice, secret = alice_with_totp
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert current_user(client) == alice


@pytest.mark.django_db
def test_login_with_wrong_totp_code_refused(client, alice_with_totp):
    alice, _ = alice_with_totp
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert response.context["form"].errors["code"] == ["Incorrect code."]
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_login_with_recovery_code(client, alice_with_totp):
    alice, _ = alice_with_totp
    codes = RecoveryCodes(Authenticator.objects.get(user=alice, type=Authenticator.Type.RECOVERY_CODES))
    code = codes.get_unused_codes()[0]
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 302
    assert current_user(client) == alice


@pytest.mark.django_db
def test_recovery_code_works_only_once(client, alice_with_totp):
    alice, _ = alice_with_totp
    authenticator = Authenticator.objects.get(user=alice, type=Authenticator.Type.RECOVERY_CODES)
    code = RecoveryCodes(authenticator).get_unused_codes()[0]
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": code})
    client.post(reverse("account_logout"))
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 200
    assert not current_user(client).is_authenticated


@pytest.mark.django_db
def test_recovery_codes_page_lists_codes(client, alice_with_totp):
    alice, secret = alice_with_totp
    client.post(reverse("account_login"), {"login": alice.username, "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    reauthenticate(client)
    response = client.get(reverse("mfa_view_recovery_codes"))
    authenticator = Authenticator.objects.get(user=alice, type=Authenticator.Type.RECOVERY_CODES)
    assert RecoveryCodes(authenticator).get_unused_codes()[0] in response.content.decode()


@pytest.mark.django_db
def test_tokens_page_explains_cli_needs_token_with_2fa(client, alice_with_totp):
    alice, _ = alice_with_totp
    client.force_login(alice)
    html = client.get(reverse("accounts:token_list")).content.decode()
    assert "Two-factor authentication is on." in html
    assert "need an access token" in html and "podman login" in html
