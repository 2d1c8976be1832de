"""Basic credentials for the token service: passwords, access tokens, 2FA, throttling."""

import base64
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.utils import timezone

from accounts.credentials import (
    AccessTokenRequired,
    Authenticated,
    TooManyAttempts,
    authenticate_credentials,
    parse_basic_authorization,
)
from accounts.models import User
from accounts.services import access_token_create, access_token_revoke
from accounts.throttles import failure_keys
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

IP = "198.51.100.7"


@pytest.fixture(autouse=True)
def _fresh_address_counts():
    cache.delete(failure_keys(identifier="", address=IP, user=None)[1])


def login(username, password):
    return authenticate_credentials(username, password, remote_addr=IP)


def enable_mfa(user):
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})


def test_password(alice):
    assert login(alice.username, PASSWORD) == Authenticated(user=alice, token=None)


def test_email_as_username(alice):
    assert login(alice.email.upper(), PASSWORD).user == alice


def test_username_is_case_insensitive(alice):
    assert login(alice.username.upper(), PASSWORD).user == alice


def test_wrong_password(alice):
    assert login(alice.username, "wrong-password") is None


def test_unknown_user(db):
    assert login("nobody1234", PASSWORD) is None


def test_unknown_user_costs_a_password_hash(db, monkeypatch):
    calls = []
    original = User.set_password
    monkeypatch.setattr(User, "set_password", lambda self, raw: calls.append(raw) or original(self, raw))
    login("nobody1234", PASSWORD)
    assert calls == [PASSWORD]


def test_inactive_user_never_authenticates(alice):
    alice.is_active = False
    alice.save()
    assert login(alice.username, PASSWORD) is None


def test_personal_access_token(alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    assert login(alice.username, secret) == Authenticated(user=alice, token=token)


def test_personal_access_token_with_email(alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    assert login(alice.email, secret).token == token


def test_access_token_of_another_user(alice, bob):
    _, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    assert login(bob.username, secret) is None


def test_revoked_access_token(alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    access_token_revoke(token=token)
    assert login(alice.username, secret) is None


def test_expired_access_token(alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write",
                                        expires_at=timezone.now() + timedelta(days=1))
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert login(alice.username, secret) is None


def test_mfa_user_password_is_refused_with_the_token_hint(alice):
    enable_mfa(alice)
    with pytest.raises(AccessTokenRequired, match="personal access token"):
        login(alice.username, PASSWORD)


def test_mfa_user_access_token_is_accepted(alice):
    enable_mfa(alice)
    token, secret = access_token_create(user=alice, label="ci", scope="repo:read")
    assert login(alice.username, secret) == Authenticated(user=alice, token=token)


@pytest.mark.parametrize(("username", "password"), [("", PASSWORD), ("someone", ""), ("x" * 2000, "p")])
def test_empty_or_oversized_credentials(db, username, password):
    assert login(username, password) is None


def test_throttled_after_ten_failures(alice):
    for _ in range(10):
        assert login(alice.username, "wrong-password") is None
    with pytest.raises(TooManyAttempts):
        login(alice.username, PASSWORD)


def test_account_budget_follows_the_account_to_other_addresses(alice):
    for _ in range(10):
        login(alice.username, "wrong-password")
    with pytest.raises(TooManyAttempts):
        authenticate_credentials(alice.username, PASSWORD, remote_addr="203.0.113.9")


def test_throttle_per_address_across_usernames(db, settings):
    settings.REGISTRY_AUTH_MAX_FAILURES_PER_IP = 3
    for number in range(3):
        login(f"nobody{number}xyz", "wrong-password")
    with pytest.raises(TooManyAttempts):
        login("anotherone", "wrong-password")


def test_success_does_not_reset_the_account_failures(alice):
    for _ in range(9):
        login(alice.username, "wrong-password")
    assert login(alice.username, PASSWORD) is not None
    login(alice.username, "wrong-password")
    with pytest.raises(TooManyAttempts):
        login(alice.username, PASSWORD)


def test_throttled_error_says_when_to_retry(alice):
    for _ in range(10):
        login(alice.username, "wrong-password")
    with pytest.raises(TooManyAttempts) as caught:
        login(alice.username, PASSWORD)
    assert caught.value.retry_after > 0


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic(b"alice:secret"), ("alice", "secret")),
        (basic(b"alice:se:cr:et"), ("alice", "se:cr:et")),
        (basic(b"alice:"), ("alice", "")),
        (basic("zoë:pässword".encode()), ("zoë", "pässword")),
        ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        ("Basic   " + base64.b64encode(b"a:b").decode() + "  ", ("a", "b")),
        (basic(b"a:b").encode(), ("a", "b")),
    ],
)
def test_parse_basic_authorization(header, expected):
    assert parse_basic_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None, "", "Basic", "Basic ", "Bearer abc", "Basic !!!notbase64", "Basic YWxpY2U",  # bad padding
        basic(b"no-colon"), basic(b"\xff\xfe:\xff"), "Basic " + "A" * 10_000, "Digest username=x",
        b"\xff\xfe", "Basic YWxp Y2U6cA==", 42,
    ],
)
def test_parse_basic_authorization_never_raises(header):
    assert parse_basic_authorization(header) is None
