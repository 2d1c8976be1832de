import pytest

from registry.models import Tag
from tests.registry.helpers import bearer, digest_of, push_image, token_for

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_push_then_pull_an_image(client, alice):
    name = f"{alice.username}/app"
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    body, blobs = push_image(client, name, token)
    tag = Tag.objects.get(repository__name="app", name="latest")
    assert tag.manifest.digest == digest_of(body)
    response = client.get(f"/v2/{name}/manifests/latest", **bearer(token))
    assert response.status_code == 200
    assert response.content == body
    assert response["Docker-Content-Digest"] == digest_of(body)
    blob = client.get(f"/v2/{name}/blobs/{digest_of(blobs[1])}", **bearer(token))
    assert blob.status_code == 200 and b"".join(blob.streaming_content) == blobs[1]
