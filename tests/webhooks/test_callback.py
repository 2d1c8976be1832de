"""The legacy Docker Hub callback: one validated POST per delivery, shown on the delivery."""

import pytest

from webhooks import payloads, services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(loopback_allowed, make_hook, repo):
    make_hook("http://127.0.0.1:9/hook")
    [delivery] = services.emit_event(repo, payloads.PUSH, {"tag": "v1"})
    return delivery


def callback_path(delivery):
    return f"/u/{delivery.repository_name}/hook/{delivery.callback_id}/"


def test_callback_is_recorded(client, delivery):
    response = client.post(callback_path(delivery), {"state": "success", "description": "Tests passed",
                                                     "context": "CI", "target_url": "https://ci.example.com/1"},
                           content_type="application/json")
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.callback_state, delivery.callback_description, delivery.callback_context) == (
        "success", "Tests passed", "CI")
    assert delivery.callback_target_url == "https://ci.example.com/1" and delivery.callback_at is not None


def test_callback_is_accepted_once(client, delivery):
    assert client.post(callback_path(delivery), {"state": "failure"}, content_type="application/json").status_code \
        == 200
    second = client.post(callback_path(delivery), {"state": "success"}, content_type="application/json")
    assert second.status_code == 409
    delivery.refresh_from_db()
    assert delivery.callback_state == "failure"


@pytest.mark.parametrize("body", [
    {"state": "maybe"}, {"state": "success", "description": "x" * 256}, {"state": "success", "context": "c" * 101},
    {"state": "success", "target_url": "javascript:alert(1)"}, {"description": "no state"},
])
def test_invalid_callback_is_refused(client, delivery, body):
    assert client.post(callback_path(delivery), body, content_type="application/json").status_code == 400
    assert not Delivery.objects.filter(pk=delivery.pk, callback_at__isnull=False).exists()


def test_callback_needs_no_csrf_token(delivery):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(callback_path(delivery), {"state": "success"},
                                                     content_type="application/json")
    assert response.status_code == 200


def test_unknown_callback_id_is_404(client, delivery):
    path = f"/u/{delivery.repository_name}/hook/{'0' * 32}/"
    assert client.post(path, {"state": "success"}, content_type="application/json").status_code == 404


def test_callback_of_another_repository_path_is_404(client, delivery):
    path = f"/u/someone/else/hook/{delivery.callback_id}/"
    assert client.post(path, {"state": "success"}, content_type="application/json").status_code == 404
