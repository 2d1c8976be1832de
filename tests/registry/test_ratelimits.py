"""Pull rate limits with Docker Hub's headers, per address and per account, and the abuse limit."""

import os

import pytest

from accounts.models import Namespace
from registry import ratelimits
from tests.factories import UserFactory, make_organization
from tests.registry.helpers import (
    OCI_INDEX,
    assert_error,
    bearer,
    digest_of,
    index_manifest,
    pull_push,
    push_image,
    push_manifest,
    token_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
WINDOW = 21600


@pytest.fixture(params=["file", "redis"])
def counters(request, settings, tmp_path):
    """Every test runs on the embedded store (a file in the data dir) and on Redis when there is one."""
    if request.param == "file":
        settings.REDIS_URL = ""
        settings.DATA_DIR = tmp_path
    else:
        url = os.environ.get("HUB_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("no Redis in this environment (REDIS_URL unset)")
        settings.REDIS_URL = url
        store = ratelimits.counters()
        for key in store.client.scan_iter(f"{ratelimits.REDIS_PREFIX}*"):
            store.client.delete(key)
    yield request.param
    ratelimits._counters_for.cache_clear()


@pytest.fixture
def limits(settings, counters):
    settings.HUB_PULL_LIMIT_ANONYMOUS = 5
    settings.HUB_PULL_LIMIT_USER = 8
    settings.HUB_PULL_LIMIT_WINDOW_SECONDS = WINDOW
    return settings


@pytest.fixture
def public_image(client, alice, name):
    token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
    push_image(client, name, token, tag="v1")
    return name


def anonymous(client, name: str, address: str = "203.0.113.7") -> dict[str, str]:
    return {**bearer(token_for(client, None, f"repository:{name}:pull")), "REMOTE_ADDR": address}


def get(client, name, headers, reference="v1"):
    return client.get(f"/v2/{name}/manifests/{reference}", **headers)


def test_limits_off_count_nothing_and_add_no_header(client, settings, counters, public_image):
    settings.HUB_PULL_LIMIT_ANONYMOUS = settings.HUB_PULL_LIMIT_USER = 0
    response = get(client, public_image, anonymous(client, public_image))
    assert response.status_code == 200
    assert "ratelimit-limit" not in response and "docker-ratelimit-source" not in response


def test_each_get_takes_one_and_says_what_is_left(client, limits, public_image):
    headers = anonymous(client, public_image)
    first = get(client, public_image, headers)
    assert first.status_code == 200
    assert first["ratelimit-limit"] == f"5;w={WINDOW}"
    assert first["ratelimit-remaining"] == f"4;w={WINDOW}"
    assert len(first["docker-ratelimit-source"]) == 32 and "203.0.113.7" not in first["docker-ratelimit-source"]
    assert get(client, public_image, headers)["ratelimit-remaining"] == f"3;w={WINDOW}"


def test_head_never_counts_but_carries_the_headers(client, limits, public_image):
    headers = anonymous(client, public_image)
    for _ in range(7):
        head = client.head(f"/v2/{public_image}/manifests/v1", **headers)
        assert head.status_code == 200
        assert head["ratelimit-remaining"] == f"5;w={WINDOW}"
    assert get(client, public_image, headers)["ratelimit-remaining"] == f"4;w={WINDOW}"


def test_past_the_limit_a_get_is_refused_with_the_registry_error_and_headers(client, limits, public_image):
    headers = anonymous(client, public_image)
    for _ in range(5):
        assert get(client, public_image, headers).status_code == 200
    refused = get(client, public_image, headers)
    message = assert_error(refused, 429, "TOOMANYREQUESTS")["message"]
    assert "5 pulls per 6 hours" in message and "resets at" in message and "Signing in" in message
    assert refused["ratelimit-remaining"] == f"0;w={WINDOW}"
    assert refused["ratelimit-limit"] == f"5;w={WINDOW}"
    # A refused GET takes nothing: HEAD still answers, and says 0 are left.
    head = client.head(f"/v2/{public_image}/manifests/v1", **headers)
    assert (head.status_code, head["ratelimit-remaining"]) == (200, f"0;w={WINDOW}")


def test_addresses_are_counted_apart_and_an_ipv6_64_as_one(client, limits, public_image):
    for _ in range(5):
        get(client, public_image, anonymous(client, public_image, "2001:db8:1:2::10"))
    assert get(client, public_image, anonymous(client, public_image, "2001:db8:1:2:ffff::1")).status_code == 429
    assert get(client, public_image, anonymous(client, public_image, "2001:db8:1:3::10")).status_code == 200
    assert get(client, public_image, anonymous(client, public_image, "198.51.100.1")).status_code == 200


def test_a_signed_in_account_is_counted_per_account_whatever_its_address(client, limits, public_image, bob):
    token = token_for(client, bob.username, f"repository:{public_image}:pull")
    for number in range(8):
        response = get(client, public_image, {**bearer(token), "REMOTE_ADDR": f"198.51.100.{number}"})
        assert response.status_code == 200
    assert response["ratelimit-limit"] == f"8;w={WINDOW}"
    refused = get(client, public_image, {**bearer(token), "REMOTE_ADDR": "192.0.2.99"})
    message = assert_error(refused, 429, "TOOMANYREQUESTS")["message"]
    assert "this account" in message and "Signing in" not in message
    # The same address, anonymous, has its own budget.
    assert get(client, public_image, anonymous(client, public_image, "192.0.2.99")).status_code == 200


def test_an_account_plan_and_an_organization_plan_set_the_limit(client, limits, public_image, bob):
    Namespace.objects.filter(user=bob).update(pull_limit=2)
    token = token_for(client, bob.username, f"repository:{public_image}:pull")
    assert get(client, public_image, bearer(token))["ratelimit-limit"] == f"2;w={WINDOW}"

    member = UserFactory()
    organization = make_organization(member)
    Namespace.objects.filter(organization=organization).update(pull_limit=50)
    token = token_for(client, member.username, f"repository:{public_image}:pull")
    assert get(client, public_image, bearer(token))["ratelimit-limit"] == f"50;w={WINDOW}"

    Namespace.objects.filter(organization=organization).update(pull_limit=0)  # unlimited
    token = token_for(client, member.username, f"repository:{public_image}:pull")
    assert "ratelimit-limit" not in get(client, public_image, bearer(token))


def test_an_index_and_the_manifest_chosen_from_it_are_one_pull(client, limits, alice, name):
    token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
    children = []
    for arch in ("amd64", "arm64"):
        body, _ = push_image(client, name, token, tag=f"only-{arch}", arch=arch)
        children.append((body, "linux", arch))
    push_manifest(client, name, "multi", index_manifest(children), token, OCI_INDEX)
    headers = anonymous(client, name)
    assert get(client, name, headers, "multi")["ratelimit-remaining"] == f"4;w={WINDOW}"
    assert get(client, name, headers, digest_of(children[1][0]))["ratelimit-remaining"] == f"4;w={WINDOW}"


def test_over_the_limit_a_private_repository_and_an_absent_one_answer_alike(client, limits, alice, public_image):
    from repositories.models import Repository

    private = f"{alice.username}/secret"
    token = pull_push(client, alice, private)["HTTP_AUTHORIZATION"][7:]
    push_image(client, private, token, tag="v1")
    Repository.objects.filter(name="secret").update(is_private=True)
    headers = anonymous(client, public_image)
    for _ in range(6):
        get(client, public_image, headers)
    answers = []
    for repository in (private, f"{alice.username}/absent"):
        response = get(client, repository, anonymous(client, repository))
        answers.append((response.status_code, response.content.replace(repository.encode(), b"NAME"),
                        sorted(response.headers)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_the_abuse_limit_answers_a_bare_429_on_every_registry_route(client, settings, counters, public_image):
    settings.HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE = 3
    for _ in range(3):
        assert client.get("/v2/", REMOTE_ADDR="192.0.2.50").status_code == 401
    refused = client.get(f"/v2/{public_image}/tags/list", REMOTE_ADDR="192.0.2.50")
    assert refused.status_code == 429 and refused.content == b"" and int(refused["Retry-After"]) >= 1
    assert client.get("/v2/", REMOTE_ADDR="192.0.2.51").status_code == 401
