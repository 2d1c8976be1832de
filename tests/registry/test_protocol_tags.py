"""end-8 tags list: lexical order, n, last, Link."""

import pytest

from registry.models import Tag
from tests.registry.helpers import (
    API_VERSION,
    assert_error,
    pull_push,
    push_image,
    push_manifest,
)

pytestmark = [pytest.mark.django_db]

TAGS = ["v1.10", "latest", "V2", "1.0", "v1.2", "alpha", "_x"]


@pytest.fixture
def auth(client, alice, name):
    headers = pull_push(client, alice, name)
    token = headers["HTTP_AUTHORIZATION"][7:]
    body, _ = push_image(client, name, token, tag=TAGS[0])
    for tag in TAGS[1:]:
        push_manifest(client, name, tag, body, token)
    return headers


def test_tags_in_lexical_order(client, name, auth):
    response = client.get(f"/v2/{name}/tags/list", **auth)
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"name": name, "tags": sorted(TAGS)}
    assert "Link" not in response


def test_first_page(client, name, auth):
    response = client.get(f"/v2/{name}/tags/list?n=3", **auth)
    assert response.json()["tags"] == sorted(TAGS)[:3]
    last = sorted(TAGS)[2]
    assert response["Link"] == f'</v2/{name}/tags/list?last={last}&n=3>; rel="next"'


def test_follow_links_to_the_end(client, name, auth):
    url, seen = f"/v2/{name}/tags/list?n=2", []
    for _ in range(10):
        response = client.get(url, **auth)
        seen += response.json()["tags"]
        if "Link" not in response:
            break
        url = response["Link"].split(">")[0][1:]
    assert seen == sorted(TAGS)


def test_last_without_n(client, name, auth):
    response = client.get(f"/v2/{name}/tags/list?last=latest", **auth)
    assert response.json()["tags"] == [t for t in sorted(TAGS) if t > "latest"]


def test_last_page_has_no_link(client, name, auth):
    response = client.get(f"/v2/{name}/tags/list?n={len(TAGS)}", **auth)
    assert response.json()["tags"] == sorted(TAGS)
    assert "Link" not in response


def test_n_zero_is_an_empty_list(client, name, auth):
    response = client.get(f"/v2/{name}/tags/list?n=0", **auth)
    assert response.status_code == 200
    assert response.json() == {"name": name, "tags": []}


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_bad_n(client, name, auth, n):
    assert client.get(f"/v2/{name}/tags/list?n={n}", **auth).status_code == 400


def test_empty_repository_lists_no_tags(client, alice, name, auth):
    Tag.objects.all().delete()
    assert client.get(f"/v2/{name}/tags/list", **auth).json() == {"name": name, "tags": []}


def test_unknown_repository(client, alice):
    name = f"{alice.username}/nothing"
    assert_error(client.get(f"/v2/{name}/tags/list", **pull_push(client, alice, name, "pull")), 404, "NAME_UNKNOWN")


def test_official_name_is_listed_as_written(client, staff):
    headers = pull_push(client, staff, "ubuntu")
    push_image(client, "ubuntu", headers["HTTP_AUTHORIZATION"][7:], tag="22.04")
    assert client.get("/v2/ubuntu/tags/list", **headers).json() == {"name": "ubuntu", "tags": ["22.04"]}
    library = pull_push(client, staff, "library/ubuntu", "pull")
    assert client.get("/v2/library/ubuntu/tags/list", **library).json()["tags"] == ["22.04"]
