"""Turning 2FA on or changing the password ends the account's other sessions; the one that did it stays."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.accounts.conftest import reauthenticate, sign_in
from tests.accounts.test_mfa import totp_code
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(client: Client) -> bool:
    return client.get(reverse("accounts:settings")).status_code == 200


@pytest.fixture
def elsewhere(alice):
    """alice signed in on another device."""
    other = Client()
    sign_in(other, alice)
    assert signed_in(other)
    return other


@pytest.mark.django_db(transaction=True)  # allauth announces the new authenticator when its transaction commits
def test_turning_totp_on_ends_the_other_sessions(alice_client, elsewhere):
    alice_client.get(reverse("mfa_activate_totp"))
    secret = alice_client.session["mfa.totp.secret"]
    response = alice_client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert signed_in(alice_client)
    assert not signed_in(elsewhere)


def test_totp_turned_on_outside_the_web_flow_ends_every_session(client, alice, elsewhere):
    sign_in(client, alice)
    TOTP.activate(User.objects.get(pk=alice.pk), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert not signed_in(client)
    assert not signed_in(elsewhere)


def test_changing_the_password_ends_the_other_sessions(alice_client, elsewhere):
    response = alice_client.post(reverse("account_change_password"), {
        "oldpassword": PASSWORD, "password1": "another-long-password-1", "password2": "another-long-password-1"})
    assert response.status_code == 302
    assert signed_in(alice_client)
    assert not signed_in(elsewhere)


def test_a_profile_edit_keeps_the_sessions(alice_client, elsewhere):
    alice_client.post(reverse("accounts:settings"), {"full_name": "Alice"})
    reauthenticate(alice_client)
    assert signed_in(alice_client)
    assert signed_in(elsewhere)



def _rotate_the_secret_key(settings) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "the-key-after-the-rotation-" * 2, [settings.SECRET_KEY]


def test_a_session_from_before_a_secret_key_rotation_ends_with_the_epoch_too(alice, settings):
    """Django also accepts sessions signed with SECRET_KEY_FALLBACKS (key rotation): those must end too."""
    User.objects.filter(pk=alice.pk).update(credentials_epoch=0)  # signed in before the epoch ever moved
    settings.SECRET_KEY = "the-key-before-the-rotation-" * 2
    used_since, untouched = Client(), Client()
    sign_in(used_since, alice)
    sign_in(untouched, alice)
    _rotate_the_secret_key(settings)
    assert signed_in(used_since)  # the rotation alone keeps sessions (and re-signs this one with the new key)
    TOTP.activate(User.objects.get(pk=alice.pk), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert not signed_in(used_since)
    assert not signed_in(untouched)  # still carrying the old key's hash: checked against the fallbacks


def test_a_secret_key_rotation_keeps_the_sessions_of_an_account_whose_epoch_moved(client, alice, settings):
    User.objects.filter(pk=alice.pk).update(credentials_epoch=3)
    settings.SECRET_KEY = "the-key-before-the-rotation-" * 2
    sign_in(client, alice)
    _rotate_the_secret_key(settings)
    assert signed_in(client)
