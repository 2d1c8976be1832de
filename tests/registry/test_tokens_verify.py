"""The registry side of a token: signature, audience, times and access."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from accounts.models import Namespace
from oci.scopes import parse_scopes
from registry import tokens
from registry.tokens import authenticate_refresh_token, issue_refresh_token, issue_registry_token, verify_registry_token
from repositories.permissions import Actor
from tests.factories import RepositoryFactory, library_namespace

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def sign(claims, key=None, algorithm="ES256", headers=None):
    signing_key = tokens.get_signing_key()
    return jwt.encode(claims, key or signing_key.private_key, algorithm=algorithm,
                      headers=headers or {"kid": signing_key.kid})


def claims(**overrides):
    now = int(time.time())
    base = {"iss": settings.HUB_PUBLIC_URL, "sub": "alice", "aud": settings.REGISTRY_SERVICE, "exp": now + 300,
            "nbf": now, "iat": now, "jti": "x",
            "access": [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]}
    base.update(overrides)
    return base


def test_issued_token_verifies(alice):
    repo = RepositoryFactory(namespace=Namespace.objects.get(user=alice))
    scopes = parse_scopes([f"repository:{repo.full_name}:pull"])
    issued = issue_registry_token(actor=Actor.for_user(alice), scopes=scopes)
    verified = verify_registry_token(issued.token)
    assert verified.subject == alice.username
    assert verified.actions_for(alice.username, repo.name) == {"pull"}
    assert verified.actions_for(alice.username, "other") == frozenset()


def test_short_and_long_official_names_match(db):
    repo = RepositoryFactory(namespace=library_namespace())
    issued = issue_registry_token(actor=Actor(), scopes=parse_scopes([f"repository:{repo.name}:pull"]))
    assert verify_registry_token(issued.token).actions_for("library", repo.name) == {"pull"}


def test_long_official_name_in_the_claim(db):
    token = sign(claims(access=[{"type": "repository", "name": "library/ubuntu", "actions": ["pull"]}]))
    assert verify_registry_token(token).actions_for("library", "ubuntu") == {"pull"}


def test_star_implies_every_action(db):
    token = sign(claims(access=[{"type": "repository", "name": "alice/app", "actions": ["*"]}]))
    assert verify_registry_token(token).actions_for("alice", "app") == {"*", "pull", "push", "delete"}


def test_entries_for_the_same_repository_are_united(db):
    token = sign(claims(access=[{"type": "repository", "name": "ubuntu", "actions": ["pull"]},
                                {"type": "repository", "name": "library/ubuntu", "actions": ["push"]}]))
    assert verify_registry_token(token).actions_for("library", "ubuntu") == {"pull", "push"}


def test_invalid_names_in_access_are_ignored(db):
    token = sign(claims(access=[{"type": "repository", "name": "a/b/c", "actions": ["pull"]}]))
    assert verify_registry_token(token).actions_for("a", "b") == frozenset()


def test_registry_catalog(db):
    issued = issue_registry_token(actor=Actor(), scopes=parse_scopes(["registry:catalog:*"]))
    assert verify_registry_token(issued.token).has_registry_catalog


def test_no_catalog_unless_granted(db):
    assert not verify_registry_token(sign(claims())).has_registry_catalog


def test_wrong_audience_is_refused(db):
    assert verify_registry_token(sign(claims(aud="hub-api"))) is None


def test_missing_audience_is_refused(db):
    body = claims()
    del body["aud"]
    assert verify_registry_token(sign(body)) is None


def test_wrong_issuer_is_refused(db):
    assert verify_registry_token(sign(claims(iss="https://elsewhere.example"))) is None


def test_expired_token_is_refused(db):
    now = int(time.time())
    assert verify_registry_token(sign(claims(exp=now - 120, iat=now - 420, nbf=now - 420))) is None


def test_small_clock_skew_is_tolerated(db):
    now = int(time.time())
    assert verify_registry_token(sign(claims(nbf=now + 5, iat=now + 5))) is not None


def test_token_not_yet_valid_is_refused(db):
    now = int(time.time())
    assert verify_registry_token(sign(claims(nbf=now + 600, iat=now + 600, exp=now + 900))) is None


def test_tampered_payload_is_refused(db):
    header, payload, signature = sign(claims()).split(".")
    other = sign(claims(access=[{"type": "repository", "name": "alice/app", "actions": ["*"]}])).split(".")[1]
    assert verify_registry_token(f"{header}.{other}.{signature}") is None
    assert verify_registry_token(f"{header}.{payload}.{signature}") is not None


def test_tampered_signature_is_refused(db):
    token = sign(claims())
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    assert verify_registry_token(flipped) is None


def test_another_key_is_refused(db):
    assert verify_registry_token(sign(claims(), key=ec.generate_private_key(ec.SECP256R1()))) is None


def test_unsigned_token_is_refused(db):
    assert verify_registry_token(jwt.encode(claims(), None, algorithm="none")) is None


def test_hmac_signed_token_is_refused(db):
    token = jwt.encode(claims(), "a-shared-secret-that-is-not-the-public-key", algorithm="HS256")
    assert verify_registry_token(token) is None


@pytest.mark.parametrize("value", ["", "garbage", "a.b.c", "x" * 20_000, None, 5])
def test_garbage_is_refused(db, value):
    assert verify_registry_token(value) is None


@pytest.mark.parametrize(
    "access",
    ["alice/app", [1], [{"type": "repository", "name": 5, "actions": []}],
     [{"type": "repository", "name": "a/b", "actions": "pull"}]],
)
def test_malformed_access_is_refused(db, access):
    assert verify_registry_token(sign(claims(access=access))) is None


def test_refresh_token_is_not_an_access_token(alice):
    assert verify_registry_token(issue_refresh_token(user=alice)) is None


def test_access_token_is_not_a_refresh_token(alice):
    issued = issue_registry_token(actor=Actor.for_user(alice), scopes=[])
    assert authenticate_refresh_token(issued.token) is None


def test_refresh_token_round_trip(alice):
    assert authenticate_refresh_token(issue_refresh_token(user=alice)).user == alice


def test_verification_is_cached(db):
    token = sign(claims())
    assert verify_registry_token(token) is verify_registry_token(token)


def test_cached_result_is_dropped_after_expiry(db, monkeypatch):
    token = sign(claims())
    first = verify_registry_token(token)
    decoded = []
    monkeypatch.setattr(tokens, "_decode", lambda token, audience: decoded.append(token))
    monkeypatch.setattr(tokens.time, "time", lambda: first.expires_at + tokens.LEEWAY_SECONDS + 1)
    assert verify_registry_token(token) is None
    assert decoded == [token]


def test_cache_is_bounded(db, monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    for number in range(6):
        verify_registry_token(sign(claims(jti=str(number))))
    assert len(tokens._verified) <= 3


def test_cache_does_not_outlive_a_service_change(db, settings):
    token = sign(claims())
    assert verify_registry_token(token) is not None
    settings.REGISTRY_SERVICE = "other.example:5000"
    assert verify_registry_token(token) is None
