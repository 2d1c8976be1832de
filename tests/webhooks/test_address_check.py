"""A webhook URL is checked against the delivery address rules when it is saved (web form and API), and
the message says which rule refuses it; deliveries still check again."""

import socket

import pytest

from webhooks import sending, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

RULE = b"webhooks reach public addresses only (HUB_WEBHOOK_ALLOWED_NETWORKS allows others)"


def form_url(repo):
    return f"/r/{repo.namespace.name}/{repo.name}/webhooks/new"


def api_url(repo):
    return f"/v2/repositories/{repo.namespace.name}/{repo.name}/webhooks/"


def jwt_for(user):
    from hub.api import issue_api_token

    return {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user)}"}


@pytest.fixture
def fake_dns(monkeypatch):
    """Names of the test resolve to the addresses given here (no network needed)."""
    answers = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/hook", b"127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", b"::1 is a loopback address"),
    ("http://10.1.2.3/hook", b"10.1.2.3 is a private address"),
    ("http://169.254.169.254/latest/meta-data", b"169.254.169.254 is a link-local address"),
    ("http://localhost:9000/hook", b"localhost resolves to"),
])
def test_form_refuses_an_address_deliveries_may_not_reach(client, alice, repo, settings, url, reason):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    client.force_login(alice)
    response = client.post(form_url(repo), {"name": "x", "url": url, "events": ["push"], "active": "on"})
    assert response.status_code == 400
    assert reason in response.content and RULE in response.content
    assert not Webhook.objects.exists()


def test_form_names_the_address_a_name_resolves_to(client, alice, repo, settings, fake_dns):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    fake_dns["ci.internal.test"] = ["192.168.1.20"]
    client.force_login(alice)
    response = client.post(form_url(repo), {"name": "x", "url": "https://ci.internal.test/h", "events": ["push"]})
    assert response.status_code == 400
    assert b"ci.internal.test resolves to 192.168.1.20, which is a private address" in response.content


def test_a_name_with_one_public_address_is_accepted(client, alice, repo, settings, fake_dns):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    fake_dns["ci.mixed.test"] = ["10.0.0.5", "93.184.215.14"]
    client.force_login(alice)
    response = client.post(form_url(repo), {"name": "x", "url": "https://ci.mixed.test/h", "events": ["push"],
                                            "active": "on"})
    assert response.status_code == 302
    assert Webhook.objects.get().url == "https://ci.mixed.test/h"


def test_allowed_networks_let_loopback_through(client, alice, repo, settings):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    client.force_login(alice)
    response = client.post(form_url(repo), {"name": "x", "url": "http://127.0.0.1:8080/h", "events": ["push"],
                                            "active": "on"})
    assert response.status_code == 302
    assert Webhook.objects.get().url == "http://127.0.0.1:8080/h"


def test_form_help_no_longer_promises_what_it_did_not_check(client, alice, repo):
    client.force_login(alice)
    page = client.get(form_url(repo)).content
    assert b"loopback and private addresses are refused" in page


def test_api_refuses_loopback_and_says_why(client, alice, repo, settings):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    response = client.post(api_url(repo), {"name": "ci", "hook_url": "http://127.0.0.1:9/h", "events": ["push"]},
                           content_type="application/json", **jwt_for(alice))
    assert response.status_code == 400
    message = response.json()["hook_url"][0]
    assert message.startswith("127.0.0.1 is a loopback address") and RULE.decode() in message
    assert not Webhook.objects.exists()


def test_api_patch_to_a_private_address_is_refused(client, alice, repo, settings, make_hook):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    hook = make_hook("https://ci.example.com/h")
    response = client.patch(f"{api_url(repo)}{hook.pk}/", {"hook_url": "http://10.9.8.7/h"},
                            content_type="application/json", **jwt_for(alice))
    assert response.status_code == 400 and "10.9.8.7 is a private address" in response.json()["hook_url"][0]
    hook.refresh_from_db()
    assert hook.url == "https://ci.example.com/h"


def test_api_accepts_an_allowed_network(client, alice, repo, settings):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    response = client.post(api_url(repo), {"name": "ci", "hook_url": "http://10.1.1.1/h", "events": ["push"]},
                           content_type="application/json", **jwt_for(alice))
    assert response.status_code == 201, response.content


def test_delivery_still_checks_when_the_rules_change_after_saving(settings, repo, alice, receiver):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    hook = services.webhook_create(repository=repo, name="ci", url=receiver.url(), events=["push"], user=alice)
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    delivery = services.webhook_ping(webhook=hook, user=alice)
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert receiver.requests == [] and delivery.state == Delivery.State.FAILED and "loopback" in delivery.error


def test_an_unchanged_url_saved_under_other_rules_can_still_be_edited(client, alice, repo, settings, make_hook):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    hook = make_hook("http://127.0.0.1:9/h")
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    client.force_login(alice)
    response = client.post(f"/r/{repo.namespace.name}/{repo.name}/webhooks/{hook.pk}",
                           {"name": "renamed", "url": hook.url, "events": ["push"], "active": "on"})
    assert response.status_code == 302
    response = client.patch(f"{api_url(repo)}{hook.pk}/", {"name": "again", "hook_url": hook.url},
                            content_type="application/json", **jwt_for(alice))
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert hook.name == "again"
