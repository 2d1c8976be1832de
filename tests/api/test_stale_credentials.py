"""Password-made credentials die when 2FA is turned on, the password changes or the account is deactivated.

Checked where each credential is verified: Hub API JWTs, registry refresh tokens (the credentials epoch
they carry); tokens made from a personal access token survive, since 2FA users need them.
"""

import base64
import re

import jwt
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.urls import reverse

from accounts.models import User
from accounts.services import access_token_create, user_deactivate
from hub.api import issue_api_token
from registry.tokens import get_signing_key
from tests.api.conftest import auth
from tests.conftest import PASSWORD

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def login_jwt(api, user, password=PASSWORD) -> dict[str, str]:
    response = api.post("/v2/users/login", {"username": user.username, "password": password}, format="json")
    assert response.status_code == 200
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['token']}"}


def mint_token(api, headers):
    return api.post("/v2/access-tokens/", {"token_label": "mine now", "scopes": ["repo:admin"]}, format="json",
                    **headers)


def test_password_jwt_cannot_mint_a_token_after_totp_is_turned_on(api, alice):
    headers = login_jwt(api, alice)
    TOTP.activate(alice, SECRET)
    response = mint_token(api, headers)
    assert response.status_code == 401
    assert not alice.access_tokens.exists()


def test_totp_turned_on_by_a_row_made_elsewhere_ends_the_jwt(api, alice):
    """The admin or a script creating the authenticator: no view of ours runs."""
    headers = login_jwt(api, alice)
    Authenticator.objects.create(user_id=alice.pk, type=Authenticator.Type.TOTP, data={"secret": SECRET})
    assert api.get("/v2/access-tokens", **headers).status_code == 401


def test_password_jwt_works_until_then(api, alice):
    assert mint_token(api, login_jwt(api, alice)).status_code == 201


def test_access_token_jwt_survives_totp(api, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:admin")
    headers = auth(alice, token)
    TOTP.activate(alice, SECRET)
    assert api.get("/v2/access-tokens", **headers).status_code == 200


def test_password_reset_ends_the_jwt(api, alice):
    headers = login_jwt(api, alice)
    user = User.objects.get(pk=alice.pk)  # another process's copy of the account
    user.set_password("a-brand-new-password")
    user.save()
    assert api.get("/v2/access-tokens", **headers).status_code == 401


def test_deactivation_ends_the_jwt_for_good(api, alice):
    headers = login_jwt(api, alice)
    user_deactivate(user=alice)
    alice.is_active = True
    alice.save()
    assert api.get("/v2/access-tokens", **headers).status_code == 401


def test_a_stale_copy_saved_later_does_not_bring_the_epoch_back(api, alice):
    stale = User.objects.get(pk=alice.pk)
    headers = login_jwt(api, alice)
    TOTP.activate(alice, SECRET)
    stale.full_name = "Alice"
    stale.save()  # a profile edit made with a copy read before 2FA was turned on
    assert api.get("/v2/access-tokens", **headers).status_code == 401


def test_refresh_token_from_the_password_dies_with_a_deactivation_undone(client, alice):
    basic = base64.b64encode(f"{alice.username}:{PASSWORD}".encode()).decode()
    response = client.get("/token", {"service": settings.REGISTRY_SERVICE, "offline_token": "true"},
                          HTTP_AUTHORIZATION=f"Basic {basic}")
    refresh_token = response.json()["refresh_token"]
    user_deactivate(user=alice)
    alice.is_active = True
    alice.save()
    response = client.post("/token", {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                      "service": settings.REGISTRY_SERVICE, "client_id": "docker"})
    assert response.status_code == 401


def test_a_jwt_issued_before_epochs_existed_lives_until_the_epoch_moves(api, alice):
    User.objects.filter(pk=alice.pk).update(credentials_epoch=0, password=make_password(PASSWORD))
    alice.refresh_from_db()
    claims = jwt.decode(issue_api_token(user=alice).split(" ")[-1], options={"verify_signature": False})
    claims.pop("ep")
    key = get_signing_key()
    old = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert api.get("/v2/access-tokens", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 200
    TOTP.activate(alice, SECRET)
    assert api.get("/v2/access-tokens", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 401


def test_totp_added_in_the_admin_ends_the_jwt(api, client, alice, staff):
    headers = login_jwt(api, alice)
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.post(reverse("admin:mfa_authenticator_add"), {
        "user": alice.pk, "type": "totp", "data": f'{{"secret": "{SECRET}"}}',
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        "last_used_at_0": "2026-01-01", "last_used_at_1": "00:00:00"})  # required by the admin form
    assert response.status_code == 302, re.findall(r"errorlist.*", response.content.decode())
    assert api.get("/v2/access-tokens", **headers).status_code == 401
