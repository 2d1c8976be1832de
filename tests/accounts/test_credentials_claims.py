"""The one claims → user check (accounts.credentials.user_for_claims) both kinds of hub token share."""

import pytest
from allauth.mfa.models import Authenticator

from accounts.credentials import ClaimsRefused, password_fingerprint, user_for_claims
from accounts.services import access_token_create, access_token_revoke
from hub.api import FINGERPRINT_PURPOSE
from registry.tokens import REFRESH_FINGERPRINT_PURPOSE

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
PURPOSES = [FINGERPRINT_PURPOSE, REFRESH_FINGERPRINT_PURPOSE]


def password_claims(user, purpose: str) -> dict:
    return {"uid": user.pk, "sub": user.username, "pwd": password_fingerprint(user, purpose),
            "ep": user.credentials_epoch}


@pytest.mark.parametrize("purpose", PURPOSES)
def test_password_claims_name_the_account(alice, purpose):
    assert user_for_claims(password_claims(alice, purpose), fingerprint_purpose=purpose).user == alice


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_second_factor_refuses_password_claims_even_with_the_epoch_unchanged(alice, purpose):
    claims = password_claims(alice, purpose)
    Authenticator.objects.bulk_create([Authenticator(user=alice, type=Authenticator.Type.TOTP, data={})])  # no signal
    with pytest.raises(ClaimsRefused, match="two-factor"):
        user_for_claims(claims, fingerprint_purpose=purpose)


def test_one_kind_of_fingerprint_is_not_accepted_for_the_other(alice):
    with pytest.raises(ClaimsRefused, match="password"):
        user_for_claims(password_claims(alice, FINGERPRINT_PURPOSE), fingerprint_purpose=REFRESH_FINGERPRINT_PURPOSE)


@pytest.mark.parametrize("pat", ["1", 1.0, True, None])
def test_a_non_integer_access_token_id_is_refused(alice, pat):
    with pytest.raises(ClaimsRefused) as refused:
        user_for_claims({"uid": alice.pk, "sub": alice.username, "pat": pat}, fingerprint_purpose=FINGERPRINT_PURPOSE)
    assert refused.value.access_token_gone


def test_a_revoked_access_token_is_refused(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    claims = {"uid": alice.pk, "sub": alice.username, "pat": token.pk}
    assert user_for_claims(claims, fingerprint_purpose=FINGERPRINT_PURPOSE).token == token
    access_token_revoke(token=token)
    with pytest.raises(ClaimsRefused):
        user_for_claims(claims, fingerprint_purpose=FINGERPRINT_PURPOSE)


def test_claims_naming_another_username_are_refused(alice, bob):
    claims = password_claims(alice, FINGERPRINT_PURPOSE) | {"sub": bob.username}
    with pytest.raises(ClaimsRefused):
        user_for_claims(claims, fingerprint_purpose=FINGERPRINT_PURPOSE)
