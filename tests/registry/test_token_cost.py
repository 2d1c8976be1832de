"""What a signed-in `GET /token` costs: clients with stored credentials send the password for every
pull and push, so each token request is on the hot path. Pinned as upper bounds, so a regression
fails: SQL statements (the cache's excluded: a fresh in-memory cache here) and cache calls.

The typical request is a push with a cross-repository mount: pull and push on the target, pull on the
source (docker and podman ask both in one request). Cheaper must never mean laxer: every scope is still
judged on its own."""

import uuid

import jwt
import pytest
from django.core.cache.backends.locmem import LocMemCache

from accounts.credentials import audited_registry_logins, verified_passwords
from accounts.models import AuditEvent, Namespace
from tests.factories import RepositoryFactory
from tests.registry.helpers import basic

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

# A password login the process verified lately (VerifiedPasswords: the next 5 minutes of a client's
# logins): the account, its repositories (one query for all), bob's collaborations.
MAX_QUERIES_VERIFIED = 3
MAX_CACHE_CALLS_VERIFIED = 1  # the failure budget, read (one get_many); nothing written
# The first login of the process, which checks the hash: also the 2FA check, the audit event and its
# account (once a day per account and address), and the budget's counters, counted and taken back.
MAX_QUERIES_FIRST = 6
MAX_CACHE_CALLS_FIRST = 13


class CountingCache(LocMemCache):
    """Django's in-memory cache, counting the calls made to it from outside (not its own inner ones)."""

    calls: list[str] = []
    depth = 0


def _counting(name: str):
    original = getattr(LocMemCache, name)

    def method(self, *args, **kwargs):
        if CountingCache.depth == 0:
            CountingCache.calls.append(name)
        CountingCache.depth += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            CountingCache.depth -= 1

    return method


for _name in ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr", "decr", "touch",
              "has_key", "get_or_set"):
    setattr(CountingCache, _name, _counting(_name))


@pytest.fixture(autouse=True)
def counting_cache(settings):
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.CountingCache", "LOCATION": uuid.uuid4().hex}}
    CountingCache.calls = []
    verified_passwords.clear()
    audited_registry_logins.clear()
    yield CountingCache.calls
    verified_passwords.clear()
    audited_registry_logins.clear()


def mount_push(client, user, target: str, source: str):
    query = [("service", "127.0.0.1:8000"), ("scope", f"repository:{target}:pull,push"),
             ("scope", f"repository:{source}:pull")]
    return client.get("/token", query, HTTP_AUTHORIZATION=basic(user.username))


def access_of(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    return {entry["name"]: entry["actions"] for entry in claims["access"]}


def test_a_verified_password_login_for_a_mount_push_is_cheap(client, alice, bob, alice_repo, alice_private,
                                                             counting_cache, django_assert_max_num_queries):
    target, source = alice_repo.full_name, alice_private.full_name
    mount_push(client, bob, target, source)
    counting_cache.clear()

    with django_assert_max_num_queries(MAX_QUERIES_VERIFIED):
        response = mount_push(client, bob, target, source)

    assert access_of(response) == {target: ["pull", "push"], source: ["pull"]}
    assert len(counting_cache) <= MAX_CACHE_CALLS_VERIFIED, counting_cache


def test_the_first_login_of_a_process_for_a_mount_push_is_bounded(client, alice, bob, alice_repo, alice_private,
                                                                  counting_cache, django_assert_max_num_queries):
    target, source = alice_repo.full_name, alice_private.full_name
    counting_cache.clear()

    with django_assert_max_num_queries(MAX_QUERIES_FIRST):
        response = mount_push(client, bob, target, source)

    assert access_of(response) == {target: ["pull", "push"], source: ["pull"]}
    assert len(counting_cache) <= MAX_CACHE_CALLS_FIRST, counting_cache


def test_every_scope_of_one_request_is_judged_on_its_own(client, alice, bob, charlie, alice_repo, alice_private, org):
    own_new = f"{charlie.username}/new"
    query = [("service", "127.0.0.1:8000")] + [("scope", f"repository:{name}:pull,push") for name in (
        alice_repo.full_name,  # public, not his: pull
        alice_private.full_name,  # private, not his: nothing
        org.repository.full_name,  # another organization's private repository: nothing
        own_new,  # missing, in his own namespace: a push creates it
        f"{alice.username}/missing",  # missing, in alice's namespace: nothing
        "nobody-at-all/x",  # no such namespace: nothing
    )]

    response = client.get("/token", query, HTTP_AUTHORIZATION=basic(charlie.username))

    assert access_of(response) == {alice_repo.full_name: ["pull"], alice_private.full_name: [],
                                   org.repository.full_name: [], own_new: ["pull", "push"],
                                   f"{alice.username}/missing": [], "nobody-at-all/x": []}


def test_a_collaborator_and_a_team_member_get_their_own_grants_in_one_request(client, alice, bob, alice_repo, org):
    writer = org.members["write"]
    other = RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="other", is_private=True)
    query = [("service", "127.0.0.1:8000")] + [("scope", f"repository:{name}:pull,push,delete") for name in (
        alice_repo.full_name, org.repository.full_name, other.full_name)]

    assert access_of(client.get("/token", query, HTTP_AUTHORIZATION=basic(bob.username))) == {
        alice_repo.full_name: ["pull", "push"], org.repository.full_name: [], other.full_name: []}
    assert access_of(client.get("/token", query, HTTP_AUTHORIZATION=basic(writer.username))) == {
        alice_repo.full_name: ["pull"], org.repository.full_name: ["pull", "push"], other.full_name: []}
    assert access_of(client.get("/token", query, HTTP_AUTHORIZATION=basic(alice.username))) == {
        alice_repo.full_name: ["delete", "pull", "push"], org.repository.full_name: ["delete", "pull", "push"],
        other.full_name: ["delete", "pull", "push"]}


def test_the_daily_registry_login_event_is_written_once_however_often_the_process_logs_in(client, alice, alice_repo):
    for _ in range(4):
        mount_push(client, alice, alice_repo.full_name, alice_repo.full_name)

    assert AuditEvent.objects.filter(action="account.registry_login", actor_id=alice.pk).count() == 1


def test_another_process_having_written_the_daily_event_is_respected(client, alice, alice_repo):
    mount_push(client, alice, alice_repo.full_name, alice_repo.full_name)
    audited_registry_logins.clear()  # another process: it has not seen the marker, the cache has it

    mount_push(client, alice, alice_repo.full_name, alice_repo.full_name)

    assert AuditEvent.objects.filter(action="account.registry_login", actor_id=alice.pk).count() == 1
