"""A private repository of someone else answers exactly like a repository that does not exist."""

import jwt
import pytest

from repositories.models import Repository
from tests.registry.helpers import (
    basic,
    bearer,
    digest_of,
    pull_push,
    push_image,
)

pytestmark = [pytest.mark.django_db]

PRIVATE, MISSING = "secret", "absent"  # the same length, so only the name differs in every answer


@pytest.fixture
def private_image(client, alice):
    name = f"{alice.username}/{PRIVATE}"
    body, blobs = push_image(client, name, pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:])
    Repository.objects.filter(name=PRIVATE).update(is_private=True)
    return body, blobs


def _answer(response, repository: str) -> tuple:
    headers = {k: v.replace(repository, "<name>") for k, v in response.items() if k.lower() != "date"}
    return response.status_code, headers, response.content.replace(repository.encode(), b"<name>")


def _requests(image):
    body, blobs = image
    return [
        ("get", "manifests/latest"),
        ("get", f"manifests/{digest_of(body)}"),
        ("head", "manifests/latest"),
        ("head", f"blobs/{digest_of(blobs[1])}"),
        ("get", f"blobs/{digest_of(blobs[1])}"),
        ("get", "tags/list"),
        ("get", f"referrers/{digest_of(body)}"),
    ]


@pytest.mark.parametrize("who", ["anonymous", "bob-token", "bob-basic", "no-credentials"])
def test_private_and_missing_answer_alike(client, alice, bob, private_image, who):
    answers = {}
    for repository in (PRIVATE, MISSING):
        name = f"{alice.username}/{repository}"
        if who == "anonymous":
            headers = pull_push(client, None, name, "pull")
        elif who == "bob-token":
            headers = pull_push(client, bob, name, "pull")
        elif who == "bob-basic":
            headers = {"HTTP_AUTHORIZATION": basic(bob.username)}
        else:
            headers = {}
        answers[repository] = [
            _answer(getattr(client, method)(f"/v2/{name}/{suffix}", **headers), name)
            for method, suffix in _requests(private_image)
        ]
    assert answers[PRIVATE] == answers[MISSING]
    assert all(status in (401, 404) for status, _, _ in answers[PRIVATE])


@pytest.mark.parametrize("user", ["anonymous", "bob"])
def test_token_grants_alike(client, alice, bob, private_image, user):
    grants = {}
    for repository in (PRIVATE, MISSING):
        name = f"{alice.username}/{repository}"
        headers = {"HTTP_AUTHORIZATION": basic(bob.username)} if user == "bob" else {}
        response = client.get("/token", {"service": "127.0.0.1:8000", "scope": f"repository:{name}:pull,push"},
                              **headers)
        claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
        grants[repository] = (response.status_code, sorted(response.json()),
                              [(a["type"], a["actions"]) for a in claims["access"]])
    assert grants[PRIVATE] == grants[MISSING]
    assert grants[PRIVATE][2] == [("repository", [])]


def test_owner_can_see_the_private_repository(client, alice, private_image):
    name = f"{alice.username}/{PRIVATE}"
    response = client.get(f"/v2/{name}/manifests/latest", **pull_push(client, alice, name, "pull"))
    assert response.status_code == 200


def test_collaborator_can_pull_the_private_repository(client, alice, bob, private_image):
    Repository.objects.get(name=PRIVATE).collaborators.create(user=bob)
    name = f"{alice.username}/{PRIVATE}"
    response = client.get(f"/v2/{name}/manifests/latest", **bearer(
        pull_push(client, bob, name, "pull")["HTTP_AUTHORIZATION"][7:]))
    assert response.status_code == 200
