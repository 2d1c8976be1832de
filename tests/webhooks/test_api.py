"""The webhook JSON API under /v2/repositories/<ns>/<name>/webhooks/: same rule as the web tab."""

import pytest

from webhooks import sending, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db


def base(repo):
    return f"/v2/repositories/{repo.namespace.name}/{repo.name}/webhooks/"


def jwt_for(user):
    from hub.api import issue_api_token

    return {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user)}"}


def test_create_then_list_never_shows_the_secret(client, alice, repo):
    response = client.post(base(repo), {"name": "ci", "hook_url": "https://ci.example.com/h", "secret": "s" * 20,
                                        "events": ["push", "build_success"], "headers": {"X-Token": "t"}},
                           content_type="application/json", **jwt_for(alice))
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["hook_url"] == "https://ci.example.com/h" and created["has_secret"] is True
    assert "secret" not in created and created["secret_hint"] == "…ssss"
    listing = client.get(base(repo), **jwt_for(alice)).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == created["id"]
    assert Webhook.objects.get().secret == "s" * 20


def test_create_validates(client, alice, repo):
    response = client.post(base(repo), {"name": "ci", "hook_url": "http://u:p@example.com/", "events": ["nope"],
                                        "headers": {"X-Hub-Signature-256": "x"}},
                           content_type="application/json", **jwt_for(alice))
    assert response.status_code == 400
    assert set(response.json()) >= {"hook_url", "events", "headers"}


def test_patch_and_delete(client, alice, repo, make_hook):
    hook = make_hook("https://ci.example.com/h")
    response = client.patch(f"{base(repo)}{hook.pk}/", {"active": False, "name": "renamed"},
                            content_type="application/json", **jwt_for(alice))
    assert response.status_code == 200 and response.json()["active"] is False
    hook.refresh_from_db()
    assert hook.name == "renamed" and hook.url == "https://ci.example.com/h"
    assert client.delete(f"{base(repo)}{hook.pk}/", **jwt_for(alice)).status_code == 204
    assert not Webhook.objects.exists()


def test_deliveries_and_redeliver(client, alice, repo, make_hook, loopback_allowed, receiver):
    hook = make_hook(receiver.url())
    delivery = services.webhook_ping(webhook=hook)
    sending.delivery_sweep()
    listing = client.get(f"{base(repo)}{hook.pk}/deliveries/", **jwt_for(alice)).json()
    assert listing["results"][0]["id"] == str(delivery.pk)
    assert listing["results"][0]["state"] == "succeeded"
    assert listing["results"][0]["payload"]["ping_data"]["hook_id"] == hook.pk
    response = client.post(f"{base(repo)}{hook.pk}/deliveries/{delivery.pk}/redeliver", **jwt_for(alice))
    assert response.status_code == 202
    assert Delivery.objects.get(pk=response.json()["id"]).redelivery_of_id == delivery.pk


def test_collaborator_and_stranger_get_404(client, repo, make_hook, bob, charlie):
    hook = make_hook("https://ci.example.com/h")
    for user in (bob, charlie):
        assert client.get(base(repo), **jwt_for(user)).status_code == 404
        assert client.delete(f"{base(repo)}{hook.pk}/", **jwt_for(user)).status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


def test_anonymous_gets_401(client, repo):
    assert client.get(base(repo)).status_code == 401
