"""The Webhooks tab: repository admins only (everyone else gets 404); every action works without JS."""

import pytest

from webhooks import sending, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db


def base(repo):
    return f"/r/{repo.namespace.name}/{repo.name}/webhooks"


@pytest.fixture
def hook(make_hook, receiver):
    return make_hook(receiver.url(), secret="a-very-long-secret-1234")


def test_admin_sees_the_list(client, alice, repo, hook):
    client.force_login(alice)
    response = client.get(base(repo))
    assert response.status_code == 200
    assert hook.name.encode() in response.content and hook.url.encode() in response.content


def test_empty_list_says_what_to_do(client, alice, repo):
    client.force_login(alice)
    assert b"No webhooks yet" in client.get(base(repo)).content


@pytest.mark.parametrize("who", ["bob", "charlie", "anonymous"])
def test_others_get_404(client, repo, hook, bob, charlie, who):
    if who != "anonymous":
        client.force_login({"bob": bob, "charlie": charlie}[who])
    for path in (base(repo), f"{base(repo)}/new", f"{base(repo)}/{hook.pk}"):
        assert client.get(path).status_code == 404
    assert client.post(f"{base(repo)}/{hook.pk}/delete").status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_create_shows_the_secret_once(client, alice, repo, loopback_allowed, receiver):
    client.force_login(alice)
    response = client.post(f"{base(repo)}/new", {
        "name": "deploy", "url": receiver.url(), "events": ["push", "tag_delete"], "secret": "shown-only-once-42",
        "headers": "Authorization: Bearer t0ken", "active": "on"})
    hook = Webhook.objects.get(name="deploy")
    assert response.status_code == 302 and response["Location"] == f"{base(repo)}/{hook.pk}"
    assert (hook.events, hook.headers, hook.secret) == (["push", "tag_delete"], {"Authorization": "Bearer t0ken"},
                                                        "shown-only-once-42")
    assert b"shown-only-once-42" in client.get(response["Location"]).content
    again = client.get(response["Location"]).content
    assert b"shown-only-once-42" not in again and b"\xe2\x80\xa6e-42" in again  # only the hint


@pytest.mark.parametrize(("field", "value", "error"), [
    ("url", "ftp://example.com/", b"only http"), ("url", "http://u:p@example.com/", b"credentials"),
    ("headers", "X-Hub-Event: forged", b"set by Wharf"), ("headers", "Host: evil", b"set by Wharf"),
    ("headers", "no colon here", b"Name: value"),
])
def test_create_shows_errors_next_to_the_field(client, alice, repo, field, value, error):
    client.force_login(alice)
    data = {"name": "x", "url": "https://example.com/hook", "events": ["push"], field: value}
    response = client.post(f"{base(repo)}/new", data)
    assert response.status_code == 400 and error in response.content
    assert not Webhook.objects.exists()


def test_edit_keeps_the_secret_when_left_empty(client, alice, repo, hook):
    client.force_login(alice)
    response = client.post(f"{base(repo)}/{hook.pk}", {"name": "renamed", "url": hook.url, "events": ["push"],
                                                       "secret": "", "headers": "", "active": "on"})
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "renamed" and hook.secret == "a-very-long-secret-1234" and hook.events == ["push"]


def test_edit_can_remove_the_secret(client, alice, repo, hook):
    client.force_login(alice)
    client.post(f"{base(repo)}/{hook.pk}", {"name": hook.name, "url": hook.url, "events": ["push"],
                                            "clear_secret": "on", "active": "on"})
    hook.refresh_from_db()
    assert hook.secret == ""


def test_disable_and_enable(client, alice, repo, hook):
    client.force_login(alice)
    client.post(f"{base(repo)}/{hook.pk}/toggle")
    hook.refresh_from_db()
    assert not hook.active
    client.post(f"{base(repo)}/{hook.pk}/toggle")
    hook.refresh_from_db()
    assert hook.active


def test_enabling_clears_the_automatic_disable(client, alice, repo, hook):
    Webhook.objects.filter(pk=hook.pk).update(active=False, consecutive_failures=10, disabled_reason="Disabled …")
    client.force_login(alice)
    assert b"Disabled \xe2\x80\xa6" in client.get(f"{base(repo)}/{hook.pk}").content
    client.post(f"{base(repo)}/{hook.pk}/toggle")
    hook.refresh_from_db()
    assert hook.active and hook.consecutive_failures == 0 and hook.disabled_reason == ""


def test_delete_asks_then_deletes(client, alice, repo, hook):
    client.force_login(alice)
    assert b"Delete the webhook" in client.get(f"{base(repo)}/{hook.pk}/delete").content
    assert client.post(f"{base(repo)}/{hook.pk}/delete").status_code == 302
    assert not Webhook.objects.filter(pk=hook.pk).exists()


def test_test_delivery_then_history_request_response_and_redeliver(client, alice, repo, hook, loopback_allowed,
                                                                   receiver):
    client.force_login(alice)
    response = client.post(f"{base(repo)}/{hook.pk}/test")
    delivery = Delivery.objects.get(webhook=hook, event="ping")
    assert response["Location"] == f"{base(repo)}/{hook.pk}/deliveries/{delivery.pk}"
    receiver.answer(200, body=b"pong from receiver")
    sending.delivery_sweep()
    history = client.get(f"{base(repo)}/{hook.pk}").content
    assert str(delivery.pk).encode() in history and b"Delivered" in history
    page = client.get(response["Location"]).content
    assert b"X-Hub-Event: ping" in page and b"X-Hub-Signature-256: sha256=" in page
    assert b"pong from receiver" in page and b"&quot;ping_data&quot;" in page
    redo = client.post(f"{base(repo)}/{hook.pk}/deliveries/{delivery.pk}/redeliver")
    copy = Delivery.objects.get(redelivery_of=delivery)
    assert redo["Location"] == f"{base(repo)}/{hook.pk}/deliveries/{copy.pk}"
    assert copy.body == delivery.body


def test_history_partial_for_htmx(client, alice, repo, hook):
    services.webhook_ping(webhook=hook)
    client.force_login(alice)
    response = client.get(f"{base(repo)}/{hook.pk}?partial=deliveries", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.lstrip().startswith(b'<div id="deliveries" hx-get=')  # polls while pending
