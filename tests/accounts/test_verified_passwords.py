"""A password that logged in is remembered by the process for a while (accounts.credentials.VerifiedPasswords),
so clients that send the stored password for every pull pay one Argon2 check, not one per request; nothing
else is remembered, and anything that changes the account's credentials forgets it."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP

from accounts.credentials import (
    AccessTokenRequired,
    TooManyAttempts,
    VerifiedPasswords,
    authenticate_credentials,
    verified_passwords,
)
from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def checks(monkeypatch):
    """How many times the password hash was really checked."""
    verified_passwords.clear()
    calls = []
    original = User.check_password

    def counted(self, raw_password):
        calls.append(self.pk)
        return original(self, raw_password)

    monkeypatch.setattr(User, "check_password", counted)
    yield calls
    verified_passwords.clear()


def log_in(user: User, password: str = PASSWORD):
    return authenticate_credentials(user.username, password, remote_addr="198.51.100.9")


def test_a_password_that_logged_in_is_checked_once_for_repeated_logins(alice, checks):
    for _ in range(5):
        assert log_in(alice).user == alice
    assert checks == [alice.pk]


def test_a_wrong_password_is_checked_every_time(alice, checks):
    assert log_in(alice).user == alice
    for _ in range(3):
        assert log_in(alice, "not-the-password") is None
    assert len(checks) == 4


def test_a_new_password_forgets_the_old_one(alice, checks):
    assert log_in(alice).user == alice
    alice.set_password("a-brand-new-password-1")
    alice.save()
    assert log_in(alice) is None
    assert log_in(alice, "a-brand-new-password-1").user == alice
    assert len(checks) == 3


def test_the_right_password_of_an_account_that_must_use_a_token_is_never_remembered(alice, checks):
    """So the time taken never tells a right password from a wrong one where the answer does not."""
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    for _ in range(3):
        with pytest.raises(AccessTokenRequired):
            log_in(alice)
    assert len(checks) == 3


def test_turning_two_factor_on_forgets_a_remembered_password(alice, checks):
    assert log_in(alice).user == alice
    TOTP.activate(alice, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")  # moves the credentials epoch
    with pytest.raises(AccessTokenRequired):
        log_in(User.objects.get(pk=alice.pk))
    assert len(checks) == 2


def test_a_deactivated_account_is_refused_with_a_remembered_password(alice, checks):
    assert log_in(alice).user == alice
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert log_in(alice) is None


def test_entries_expire_and_the_table_is_bounded(alice, bob, monkeypatch):
    import accounts.credentials as credentials

    now = [1000.0]
    monkeypatch.setattr(credentials.time, "monotonic", lambda: now[0])
    table = VerifiedPasswords(seconds=60, size=1)
    table.remember(alice, PASSWORD)
    assert table.known(alice, PASSWORD) and not table.known(alice, "other")
    now[0] += 61
    assert not table.known(alice, PASSWORD)
    table.remember(alice, PASSWORD)
    table.remember(bob, PASSWORD)
    assert table.known(bob, PASSWORD) and not table.known(alice, PASSWORD)


def test_a_remembered_password_counts_nothing_against_the_budget(alice, checks, monkeypatch):
    """No counter is moved for it (each move is a cache write; on SQLite a write transaction)."""
    import accounts.credentials as credentials

    begun = []
    real_begin = credentials.login_attempt_begin
    monkeypatch.setattr(credentials, "login_attempt_begin", lambda **kwargs: begun.append(1) or real_begin(**kwargs))
    for _ in range(4):
        assert log_in(alice).user == alice
    assert begun == [1] and checks == [alice.pk]


def test_a_remembered_password_is_refused_once_the_budget_is_spent(alice, checks):
    """Guessing past the budget must not reach a yes, even for the one password that would be right."""
    assert log_in(alice).user == alice
    for number in range(10):
        assert authenticate_credentials(alice.username, "wrong-guess", remote_addr=f"203.0.113.{number}") is None
    with pytest.raises(TooManyAttempts):
        log_in(alice)


def test_one_check_at_a_time_per_password_the_others_wait_for_it(alice, bob):
    """checking(): the first caller checks; a caller with the same password waits and then knows it; a caller
    with another password or account does not wait."""
    import threading
    import time

    table = VerifiedPasswords()
    order = []
    with table.checking(alice, PASSWORD) as known:
        assert known is False

        def same() -> None:
            with table.checking(alice, PASSWORD) as known_after_wait:
                order.append(("same", known_after_wait))

        def other() -> None:
            with table.checking(bob, PASSWORD) as known_other:
                order.append(("other", known_other))

        waiter, independent = threading.Thread(target=same), threading.Thread(target=other)
        waiter.start(), independent.start()
        independent.join(5)
        time.sleep(0.2)
        assert order == [("other", False)]  # the same password is still waiting
        table.remember(alice, PASSWORD)
    waiter.join(5)
    assert order == [("other", False), ("same", True)]


def test_a_waiter_on_a_wrong_password_checks_it_itself(alice):
    import threading

    table = VerifiedPasswords()
    seen = []

    def waiter() -> None:
        with table.checking(alice, "wrong-guess") as known:
            seen.append(known)

    with table.checking(alice, "wrong-guess"):
        thread = threading.Thread(target=waiter)
        thread.start()
    thread.join(5)
    assert seen == [False]  # never remembered: the waiter goes on to the full check


@pytest.mark.django_db(transaction=True)
def test_simultaneous_logins_with_one_password_pay_one_check(alice, monkeypatch):
    """Six clients starting together (a burst of pulls with the stored password): Argon2 once, not six times."""
    import threading
    import time

    from django.db import connection

    verified_passwords.clear()
    calls = []
    original = User.check_password

    def slow(self, raw_password):
        calls.append(self.pk)
        time.sleep(0.3)  # a check under way while the others arrive
        return original(self, raw_password)

    monkeypatch.setattr(User, "check_password", slow)
    answers, start = [], threading.Barrier(6)

    def client() -> None:
        try:
            start.wait(5)
            answers.append(log_in(alice))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    verified_passwords.clear()
    assert [answer.user for answer in answers] == [alice] * 6
    assert calls == [alice.pk]
