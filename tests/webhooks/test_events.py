"""Registry events become deliveries in the same transaction; the sweep sends what was committed."""

import json

import pytest
from django.db import transaction

from registry.models import Manifest, Tag
from registry.services.manifests import manifest_put, tag_delete
from repositories.services import repository_delete
from tests.registry.helpers import OCI_MANIFEST, digest_of, push_image, token_for
from webhooks import payloads, sending
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def push(client, alice, repo):
    token = token_for(client, alice.username, f"repository:{alice.username}/app:pull,push,delete")

    def do(tag: str = "latest"):
        return push_image(client, f"{alice.username}/app", token, tag=tag)

    return do


def test_push_creates_deliveries_in_its_transaction_before_any_task_runs(
        settings, loopback_allowed, receiver, make_hook, push, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    hook = make_hook(receiver.url())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        body, _ = push("v1")
    [delivery] = Delivery.objects.filter(webhook=hook)
    assert delivery.state == Delivery.State.PENDING and delivery.attempts == 0
    assert callbacks, "the delivery is enqueued on commit"
    assert receiver.requests == []
    sending.delivery_sweep()
    [request] = receiver.requests
    data = json.loads(request.body)
    assert data["push_data"]["tag"] == "v1"
    assert data["push_data"]["digest"] == digest_of(body)
    assert data["push_data"]["media_type"] == OCI_MANIFEST
    assert data["repository"]["repo_name"] == f"{hook.repository.namespace.name}/app"
    assert data["callback_url"] == f"http://hub.example.test/u/{hook.repository.namespace.name}/app/hook/" \
                                   f"{delivery.pk.hex}/"
    assert request.headers["X-Hub-Event"] == "push"


def test_push_payload_names_the_pusher(loopback_allowed, receiver, make_hook, push, alice):
    make_hook(receiver.url())
    push()
    sending.delivery_sweep()
    assert json.loads(receiver.requests[0].body)["push_data"]["pusher"] == alice.username


def test_only_webhooks_subscribed_to_the_event_get_it(loopback_allowed, receiver, make_hook, push):
    make_hook(receiver.url(), events=["tag_delete"])
    push()
    assert not Delivery.objects.exists()


def test_rolled_back_push_creates_no_delivery(loopback_allowed, receiver, make_hook, push, repo, alice):
    body, _ = push("v1")
    make_hook(receiver.url())
    with pytest.raises(RuntimeError), transaction.atomic():
        manifest_put(repository=repo, reference="v2", body=body, content_type=OCI_MANIFEST, user=alice)
        assert Delivery.objects.count() == 1  # made inside the transaction ...
        raise RuntimeError("abort")
    assert not Delivery.objects.exists()  # ... and gone with it
    assert not Tag.objects.filter(repository=repo, name="v2").exists()


def test_tag_delete_sends_a_tag_delete_event(loopback_allowed, receiver, make_hook, push, repo, alice):
    body, _ = push("v1")
    make_hook(receiver.url(), events=["tag_delete"])
    tag_delete(repository=repo, tag_name="v1", user=alice)
    sending.delivery_sweep()
    [request] = receiver.requests
    assert request.headers["X-Hub-Event"] == "tag_delete"
    data = json.loads(request.body)
    assert data["tag_data"]["tag"] == "v1" and data["tag_data"]["digest"] == digest_of(body)
    assert data["tag_data"]["deleted_by"] == alice.username


def test_repository_delete_keeps_history_and_sends_the_snapshot(loopback_allowed, receiver, make_hook, push, repo,
                                                                 alice):
    make_hook(receiver.url(), secret="repository-delete-secret")
    push("v1")
    sending.delivery_sweep()
    namespace = repo.namespace.name
    repository_delete(repository=repo, user=alice)
    assert not Manifest.objects.filter(repository_id=repo.pk).exists()
    push_delivery = Delivery.objects.get(event=payloads.PUSH)
    assert push_delivery.repository is None and push_delivery.webhook is None  # unlinked, not deleted
    assert push_delivery.state == Delivery.State.SUCCEEDED
    gone = Delivery.objects.get(event=payloads.REPOSITORY_DELETE)
    assert gone.repository is None and gone.repository_name == f"{namespace}/app"
    sending.delivery_sweep()
    request = receiver.requests[-1]
    assert request.headers["X-Hub-Event"] == "repository_delete"
    assert payloads.verify("repository-delete-secret", request.body, request.headers["X-Hub-Signature-256"])
    data = json.loads(request.body)
    assert data["repository"]["repo_name"] == f"{namespace}/app"
    assert data["repository"]["status"] == "Deleted"
    assert data["delete_data"]["deleted_by"] == alice.username


def test_a_broken_webhook_never_fails_the_push(loopback_allowed, receiver, make_hook, push, repo):
    hook = make_hook(receiver.url())
    type(hook).objects.filter(pk=hook.pk).update(headers=["not", "a", "mapping"])
    push("v1")  # the receiver logs the problem; the push itself succeeds
    assert Tag.objects.filter(repository=repo, name="v1").exists()
