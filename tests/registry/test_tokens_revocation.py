"""Registry bearer tokens die with the credentials they were made from, checked in memory per request."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP

from accounts.credentials import Authenticated
from accounts.revocation import credentials_revoked, revocation_epoch
from accounts.services import access_token_create, access_token_revoke, user_deactivate
from oci.scopes import parse_scopes
from registry.tokens import issue_registry_token, verify_registry_token
from repositories.permissions import Actor

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def bearer_token(user, token=None) -> str:
    scopes = parse_scopes([f"repository:{user.username}/app:pull,push"])
    return issue_registry_token(actor=Actor.for_user(user, token), scopes=scopes,
                                credentials=Authenticated(user=user, token=token)).token


def test_a_revoked_access_tokens_bearer_token_is_refused(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearer = bearer_token(alice, token)
    assert verify_registry_token(bearer) is not None
    access_token_revoke(token=token)
    assert verify_registry_token(bearer) is None


def test_a_deleted_access_tokens_bearer_token_is_refused(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearer = bearer_token(alice, token)
    assert verify_registry_token(bearer) is not None
    token.delete()
    assert verify_registry_token(bearer) is None


def test_another_tokens_revocation_leaves_it_working(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    other, _ = access_token_create(user=alice, label="laptop", scope="repo:write")
    bearer = bearer_token(alice, token)
    access_token_revoke(token=other)
    assert verify_registry_token(bearer) is not None


def test_a_password_bearer_token_dies_when_totp_is_turned_on(alice):
    bearer = bearer_token(alice)
    assert verify_registry_token(bearer) is not None
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert verify_registry_token(bearer) is None


def test_an_access_token_bearer_token_survives_totp(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearer = bearer_token(alice, token)
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert verify_registry_token(bearer) is not None


def test_bearer_tokens_die_with_a_deactivated_account(alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearers = [bearer_token(alice), bearer_token(alice, token)]
    user_deactivate(user=alice)
    assert [verify_registry_token(bearer) for bearer in bearers] == [None, None]


@pytest.fixture
def epoch_in_memory(settings):
    """The revocation epoch read from the cache (a query on the embedded setup) once, not every 2 s."""
    settings.REVOCATION_REFRESH_SECONDS = 3600
    revocation_epoch()


def test_a_valid_token_costs_no_query_per_request(alice, epoch_in_memory, django_assert_num_queries):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearer = bearer_token(alice, token)
    credentials_revoked()  # a revocation elsewhere: this token is checked once, then remembered
    with django_assert_num_queries(1):
        assert verify_registry_token(bearer) is not None
    with django_assert_num_queries(0):
        for _ in range(50):
            assert verify_registry_token(bearer) is not None


def test_a_refused_token_costs_no_query_per_request_either(alice, epoch_in_memory, django_assert_num_queries):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    bearer = bearer_token(alice, token)
    access_token_revoke(token=token)
    assert verify_registry_token(bearer) is None
    with django_assert_num_queries(0):
        for _ in range(50):
            assert verify_registry_token(bearer) is None
