"""The hub's side of the build worker protocol (/api/build-worker/<id>/<action>) and the registry
token a build gets: it pushes to its own repository only, and dies with the build."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, Namespace
from builds import constants, logs, services
from builds.models import Build
from builds.services import build_cancel, build_worker_token, builds_trigger, dispatch_queued_builds
from registry.models import Manifest
from tests.builds.conftest import api_client
from tests.factories import RepositoryFactory
from tests.registry.helpers import basic, push_image, token_for
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

COMMIT = "a" * 40


@pytest.fixture
def build(linked):
    source, _ = linked
    [queued] = builds_trigger(source=source, ref="refs/heads/main", commit=COMMIT, trigger="generic")
    return queued


@pytest.fixture
def token(build):
    return build_worker_token(build.pk)


def call(client, build_id: int, action: str, token: str | None, body: dict | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(f"/api/build-worker/{build_id}/{action}", data=json.dumps(body or {}),
                       content_type="application/json", **headers)


@pytest.fixture
def claimed(client, build, token):
    response = call(client, build.pk, "claim", token)
    assert response.status_code == 200, response.content
    return response.json()["job"]


def test_a_new_build_is_sent_to_a_worker_when_its_transaction_commits(linked, django_capture_on_commit_callbacks):
    source, _ = linked
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        builds_trigger(source=source, ref="refs/heads/main", commit=COMMIT, trigger="generic")
    assert len(callbacks) == 1


def test_with_builds_off_a_new_build_stays_queued(linked, settings, django_capture_on_commit_callbacks):
    settings.HUB_BUILDS_ENABLED = False
    source, _ = linked
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        builds_trigger(source=source, ref="refs/heads/main", commit=COMMIT, trigger="generic")
    assert callbacks == [] and dispatch_queued_builds() == 0


def test_claim_gives_the_job_and_starts_the_build(claimed, build, alice):
    assert claimed["build_id"] == build.pk and claimed["commit"] == COMMIT
    assert claimed["repository"] == f"{alice.username}/app" and claimed["tag"] == "latest"
    assert claimed["username"] == alice.username and claimed["password"].startswith(AccessToken.PREFIX)
    build.refresh_from_db()
    assert build.state == constants.CLONING and build.started is not None


def test_the_job_carries_no_site_secret(claimed, settings):
    text = json.dumps(claimed)
    assert settings.SECRET_KEY not in text
    assert str(settings.KEYS_DIR) not in text and str(settings.DATA_DIR) not in text


def test_a_wrong_token_is_refused_without_saying_whether_the_build_exists(client, build, token):
    assert call(client, build.pk, "claim", "nope").status_code == 401
    assert call(client, build.pk + 1000, "claim", token).status_code == 401
    assert call(client, build.pk, "claim", None).status_code == 401
    assert Build.objects.get(pk=build.pk).state == constants.QUEUED


def test_a_new_dispatch_retires_the_previous_token(client, build, token):
    build_worker_token(build.pk)
    assert call(client, build.pk, "claim", token).status_code == 401


def test_claim_without_a_free_slot_leaves_the_build_queued(client, linked, build, token, settings):
    settings.HUB_BUILD_CONCURRENCY_PER_NAMESPACE = 1
    source, _ = linked
    [other] = builds_trigger(source=source, ref="refs/heads/main", commit="b" * 40, trigger="generic")
    assert call(client, other.pk, "claim", build_worker_token(other.pk)).status_code == 200
    assert call(client, build.pk, "claim", token).status_code == 409
    assert Build.objects.get(pk=build.pk).state == constants.QUEUED


def test_a_claimed_build_cannot_be_claimed_again(client, claimed, build, token):
    assert call(client, build.pk, "claim", token).status_code == 410


def test_a_cancelled_build_refuses_its_worker(client, build, token):
    build_cancel(build=build)
    assert call(client, build.pk, "claim", token).status_code == 401


def test_events_append_to_the_log_and_move_the_state(client, claimed, build, token):
    response = call(client, build.pk, "events", token, {"lines": ["step 1", "step 2"], "state": "building"})
    assert response.status_code == 200 and response.json() == {"cancel": False}
    build.refresh_from_db()
    assert build.state == constants.BUILDING
    assert logs.log_read(build).lines[-2:] == ["step 1", "step 2"]


def test_events_carry_the_cancel_request(client, claimed, build, token):
    build_cancel(build=Build.objects.get(pk=build.pk))
    assert call(client, build.pk, "events", token, {"lines": []}).json() == {"cancel": True}


@pytest.mark.parametrize("body", [{"lines": "x"}, {"lines": [1]}, {"state": "success"}, {"state": "queued"}])
def test_bad_events_are_refused_with_a_field_error(client, claimed, build, token, body):
    response = call(client, build.pk, "events", token, body)
    assert response.status_code == 400
    assert set(response.json()) <= {"lines", "state"}


def test_the_push_token_pushes_to_the_build_repository(client, claimed, alice):
    name = f"{alice.username}/app"
    registry_token = token_for(client, alice.username, f"repository:{name}:pull,push", password=claimed["password"])
    push_image(client, name, registry_token, tag="latest")
    assert Manifest.objects.filter(repository__name="app").exists()


def test_the_push_token_only_pulls_the_owners_other_repositories(client, claimed, alice):
    RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="other", is_private=True)
    name = f"{alice.username}/other"
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": f"repository:{name}:pull,push"},
                          HTTP_AUTHORIZATION=basic(alice.username, claimed["password"]))
    assert response.status_code == 200
    assert access_of(response.json()["token"]) == [{"type": "repository", "name": name, "actions": ["pull"]}]


def test_the_push_token_creates_no_repository(client, claimed, alice):
    scope = f"repository:{alice.username}/brandnew:pull,push"
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": scope},
                          HTTP_AUTHORIZATION=basic(alice.username, claimed["password"]))
    assert access_of(response.json()["token"]) == [{"type": "repository", "name": f"{alice.username}/brandnew",
                                                      "actions": []}]


def test_sign_stores_a_signature_for_a_pushed_digest(client, claimed, build, token, alice):
    name = f"{alice.username}/app"
    registry_token = token_for(client, alice.username, f"repository:{name}:pull,push", password=claimed["password"])
    push_image(client, name, registry_token, tag="latest")
    digest = Manifest.objects.get(repository__name="app", tags__name="latest").digest
    response = call(client, build.pk, "sign", token, {"digest": digest, "commit": COMMIT})
    assert response.status_code == 200, response.content
    tag = response.json()["tag"]
    assert tag == digest.replace(":", "-") + ".sig"
    signature = Manifest.objects.get(repository__name="app", tags__name=tag)
    assert signature.digest == response.json()["digest"]


def test_sign_refuses_a_digest_that_is_not_in_the_repository(client, claimed, build, token):
    response = call(client, build.pk, "sign", token, {"digest": "sha256:" + "0" * 64, "commit": COMMIT})
    assert response.status_code == 400 and "digest" in response.json()


def test_finish_ends_the_build_revokes_its_tokens_and_fires_the_webhook(client, claimed, build, token, alice):
    Webhook.objects.create(repository=build.repository, name="ci", url="http://127.0.0.1:9/",
                           events=["build_failure", "build_success"], created_by=alice)
    response = call(client, build.pk, "finish", token, {"state": "failed", "error": "RUN exited 1", "commit": COMMIT})
    assert response.status_code == 200 and response.json() == {"state": "failed"}
    build.refresh_from_db()
    assert build.state == constants.FAILED and build.error == "RUN exited 1"
    assert AccessToken.objects.get(pk=build.push_token_id).revoked_at is not None
    assert Delivery.objects.filter(event="build_failure").count() == 1
    assert call(client, build.pk, "events", token, {"lines": ["late"]}).status_code == 401


def test_success_without_a_signed_digest_is_recorded_as_a_failure(client, claimed, build, token):
    call(client, build.pk, "finish", token, {"state": "success", "digest": "sha256:" + "1" * 64})
    build.refresh_from_db()
    assert build.state == constants.FAILED and "signed" in build.error


def test_finish_with_a_running_state_is_refused(client, claimed, build, token):
    assert call(client, build.pk, "finish", token, {"state": "building"}).status_code == 400
    assert Build.objects.get(pk=build.pk).state == constants.CLONING


def test_a_build_whose_owner_may_no_longer_push_fails_at_claim(client, build, token, alice, bob, linked):
    source, _ = linked
    source.created_by = bob  # bob may not push to alice/app
    source.save()
    response = call(client, build.pk, "claim", token)
    assert response.status_code == 410 and f"{bob.username} may no longer push" in response.json()["detail"]
    assert Build.objects.get(pk=build.pk).state == constants.FAILED


def test_unknown_actions_and_gets_are_refused(client, build, token):
    assert call(client, build.pk, "explode", token).status_code == 404
    assert client.get(f"/api/build-worker/{build.pk}/claim").status_code == 405


# --- helpers ---------------------------------------------------------------------------------------

def access_of(jwt: str) -> list[dict]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["access"]


# --- dispatching: what the periodic dispatcher sends again ------------------------------------------

@pytest.fixture
def sent(monkeypatch):
    """The builds the dispatcher sends (their tokens are still issued; only the broker is left out)."""
    sent_ids: list[int] = []
    monkeypatch.setattr(services, "_send_to_worker", lambda build_id: (sent_ids.append(build_id),
                                                                      build_worker_token(build_id)))
    return sent_ids


def test_a_build_whose_message_is_on_its_way_is_not_sent_again(build, token, sent):
    assert dispatch_queued_builds() == 0 and sent == []


def test_a_build_a_worker_sent_back_for_want_of_a_slot_is_sent_again(client, linked, build, token, sent, settings):
    settings.HUB_BUILD_CONCURRENCY_PER_NAMESPACE = 1
    source, _ = linked
    [running] = builds_trigger(source=source, ref="refs/heads/main", commit="b" * 40, trigger="generic")
    assert call(client, running.pk, "claim", build_worker_token(running.pk)).status_code == 200
    assert call(client, build.pk, "claim", token).status_code == 409
    assert call(client, build.pk, "claim", token).status_code == 401  # the bounced token is dead
    assert dispatch_queued_builds() == 0  # no free slot yet
    Build.objects.filter(pk=running.pk).update(state=constants.SUCCESS)
    assert dispatch_queued_builds() == 1 and sent == [build.pk]


def test_a_message_out_for_too_long_is_sent_again(build, token, sent, settings):
    later = timezone.now() + timedelta(seconds=settings.HUB_BUILD_REDISPATCH_SECONDS + 1)
    assert dispatch_queued_builds(now=later) == 1 and sent == [build.pk]


def test_the_build_token_is_not_listed_among_the_owners_tokens(claimed, build, alice):
    listed = api_client(alice).get("/v2/access-tokens").json()["results"]
    push_token_id = Build.objects.get(pk=build.pk).push_token_id
    assert push_token_id and all(token["id"] != push_token_id for token in listed)
    page = Client()
    page.force_login(alice)
    assert f"build {build.pk} of" not in page.get("/settings/tokens").content.decode()
