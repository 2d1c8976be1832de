"""One failure budget per account across every door, identifier and address; one per address; forged
X-Forwarded-For changes neither."""

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import access_token_create
from accounts.throttles import TooManyAttempts, client_address, login_attempt_begin
from hub.api import AtomicScopedRateThrottle
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "wrong-password"


def basic(identifier: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{identifier}:{secret}".encode()).decode()


def token_basic(identifier, secret, **extra):
    return Client().get("/token", {"service": settings.REGISTRY_SERVICE},
                        HTTP_AUTHORIZATION=basic(identifier, secret), **extra)


def token_password_grant(identifier, secret, **extra):
    return Client().post("/token", {"grant_type": "password", "username": identifier, "password": secret,
                                    "service": settings.REGISTRY_SERVICE, "client_id": "test"}, **extra)


def api_login(identifier, secret, **extra):
    return APIClient().post("/v2/users/login", {"username": identifier, "password": secret}, format="json", **extra)


def web_login(identifier, secret, **extra):
    return Client().post(reverse("account_login"), {"login": identifier, "password": secret}, **extra)


DOORS = {"token-basic": token_basic, "token-password-grant": token_password_grant, "api-login": api_login,
         "web-login": web_login}


def spend_the_account_budget(alice):
    """Ten failures: every door, both identifiers in any case, each from its own address."""
    identifiers = [alice.username, alice.email.upper(), alice.username.upper(), alice.email]
    for number in range(10):
        door = list(DOORS.values())[number % len(DOORS)]
        response = door(identifiers[number % len(identifiers)], WRONG, REMOTE_ADDR=f"203.0.113.{number + 1}")
        assert response.status_code in (200, 401), response.content[:300]


@pytest.mark.parametrize("door", DOORS)
def test_the_right_password_is_refused_at_every_door_once_the_account_budget_is_spent(alice, door):
    spend_the_account_budget(alice)
    response = DOORS[door](alice.email, PASSWORD, REMOTE_ADDR="198.51.100.200")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_nine_failures_leave_the_password_working(alice):
    for number in range(9):
        token_basic(alice.email.upper(), WRONG, REMOTE_ADDR=f"203.0.113.{number + 1}")
    assert api_login(alice.username, PASSWORD).status_code == 200


@pytest.mark.parametrize("door", ["token-basic", "token-password-grant", "api-login"])
def test_access_tokens_keep_working_when_the_account_budget_is_spent(alice, door):
    _, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    spend_the_account_budget(alice)
    assert DOORS[door](alice.username, secret).status_code == 200


def test_the_account_budget_does_not_reach_other_accounts(alice, bob):
    spend_the_account_budget(alice)
    assert api_login(bob.username, PASSWORD, REMOTE_ADDR="198.51.100.200").status_code == 200


def test_forged_forwarded_for_does_not_reset_the_address_budget(db, settings):
    settings.REGISTRY_AUTH_MAX_FAILURES_PER_IP = 5
    for number in range(5):
        token_basic(f"nobody{number}zz", WRONG, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.9.8.{number}")
    response = api_login("someoneelse", WRONG, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.1.1")
    assert response.status_code == 429


def test_forged_forwarded_for_does_not_reset_the_api_login_rate(db, monkeypatch):
    monkeypatch.setattr(AtomicScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    monkeypatch.setattr(AtomicScopedRateThrottle, "timer", staticmethod(lambda: 7_000_020.0))
    statuses = [api_login("nobodyzz", WRONG, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"10.0.0.{number}")
                .status_code for number in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_the_api_login_rate_counts_malformed_requests(db, monkeypatch):
    monkeypatch.setattr(AtomicScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    monkeypatch.setattr(AtomicScopedRateThrottle, "timer", staticmethod(lambda: 7_000_020.0))
    api = APIClient()
    malformed = [
        api.post("/v2/users/login", "{not json", content_type="application/json"),
        api.post("/v2/users/login", {"username": "x"}, format="json"),
        api.post("/v2/users/login", {"username": "x", "password": "y"}, format="json", HTTP_ACCEPT="text/csv"),
    ]
    assert [response.status_code for response in malformed] == [400, 400, 406]
    assert api_login("nobodyzz", WRONG).status_code == 429


def test_web_login_address_ignores_forwarded_for(db):
    request = FakeRequest(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.0.0.99")
    assert get_adapter(request).get_client_ip(request) == "127.0.0.1"


class FakeRequest:
    def __init__(self, **meta):
        self.META = meta


def test_client_address_ignores_forwarded_for_without_a_proxy(settings):
    settings.HUB_BEHIND_PROXY = False
    assert client_address(FakeRequest(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.0.0.1")) == "127.0.0.1"


def test_client_address_behind_a_proxy_is_the_hop_it_appended(settings):
    settings.HUB_BEHIND_PROXY = True
    request = FakeRequest(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.44")
    assert client_address(request) == "192.0.2.44"


def test_parallel_guesses_get_no_more_than_the_budget(db, settings):
    """Each attempt is counted before its password is checked, so guesses racing each other cannot all
    pass a check made before any of them was counted (the others wait for them, then are refused)."""
    settings.REGISTRY_AUTH_IN_FLIGHT_WAIT = 0.3
    barrier = threading.Barrier(8)
    allowed = []

    def guess(number: int) -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            try:
                allowed.append(login_attempt_begin(identifier="mallory", address=f"203.0.113.{number}", user=None))
            except TooManyAttempts:
                pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(guess, range(8)))
    assert len(allowed) == 10


def test_a_second_email_address_names_the_same_account(alice):
    EmailAddress.objects.create(user=alice, email="alice.other@example.org", verified=True)
    for number in range(10):
        web_login("Alice.Other@example.org", WRONG, REMOTE_ADDR=f"203.0.113.{number + 1}")
    assert token_basic(alice.username, PASSWORD).status_code == 429


def begin_in_thread(alice, address: str = "198.51.100.7"):
    """login_attempt_begin in a thread: (the future, when it started)."""
    pool = ThreadPoolExecutor(1)
    started = time.monotonic()
    future = pool.submit(login_attempt_begin, identifier=alice.username, address=address, user=alice)
    pool.shutdown(wait=False)
    return future, started


def test_a_login_beyond_the_budget_waits_for_those_in_flight_instead_of_being_refused(alice, settings):
    """Twenty parallel logins with the right password (a `docker compose pull` of twenty images): the ones
    past the ten being checked wait for them and go on; none is refused, and none stays counted."""
    settings.REGISTRY_AUTH_IN_FLIGHT_WAIT = 30
    in_flight = [login_attempt_begin(identifier=alice.username, address="198.51.100.7", user=alice)
                 for _ in range(10)]
    waiting, started = begin_in_thread(alice)
    time.sleep(0.4)
    assert not waiting.done()  # the budget is used up by attempts in flight: it waits
    in_flight.pop().succeeded()
    attempt = waiting.result(timeout=10)
    assert time.monotonic() - started >= 0.4
    for each in [*in_flight, attempt]:
        each.succeeded()
    assert token_basic(alice.username, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_a_waiting_login_is_refused_when_those_in_flight_turn_out_failures(alice, settings):
    settings.REGISTRY_AUTH_IN_FLIGHT_WAIT = 30
    in_flight = [login_attempt_begin(identifier=alice.username, address="198.51.100.7", user=alice)
                 for _ in range(10)]
    waiting, _started = begin_in_thread(alice)
    time.sleep(0.3)
    for attempt in in_flight:
        attempt.failed()
    with pytest.raises(TooManyAttempts):
        waiting.result(timeout=10)
    assert token_basic(alice.username, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 429


def test_a_budget_spent_on_failures_refuses_at_once_without_waiting(alice, settings):
    settings.REGISTRY_AUTH_IN_FLIGHT_WAIT = 30
    spend_the_account_budget(alice)
    started = time.monotonic()
    with pytest.raises(TooManyAttempts):
        login_attempt_begin(identifier=alice.username, address="198.51.100.7", user=alice)
    assert time.monotonic() - started < 2


def test_waiting_for_those_in_flight_ends_at_the_deadline(alice, settings):
    """Attempts that never settle (their requests still hashing, or dead) hold the others no longer than
    REGISTRY_AUTH_IN_FLIGHT_WAIT; then the answer is a refusal, and it leaves no failure behind."""
    settings.REGISTRY_AUTH_IN_FLIGHT_WAIT = 0.5
    in_flight = [login_attempt_begin(identifier=alice.username, address="198.51.100.7", user=alice)
                 for _ in range(10)]
    started = time.monotonic()
    with pytest.raises(TooManyAttempts):
        login_attempt_begin(identifier=alice.username, address="198.51.100.7", user=alice)
    assert 0.5 <= time.monotonic() - started < 5
    for attempt in in_flight:
        attempt.succeeded()
    assert token_basic(alice.username, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200
