"""Custom header values are write-only, like the secret: the API, the Webhooks tab and the delivery log
show the names with a mask; sending the mask back keeps the saved value; deliveries and redeliveries
send the saved values. Personas: alice owns the organization, bob administers the repository through
a team (a second admin who did not set the headers)."""

import pytest

from accounts.models import Membership, Namespace
from hub.api import issue_api_token
from repositories.models import TeamPermission
from tests.factories import RepositoryFactory, team
from webhooks import sending, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db

MASK = services.HEADER_MASK
TOKEN = "Bearer receiver-credential-0123456789"
OURS = ("X-Hub-Event", "X-Hub-Delivery", "X-Hub-Hook-Id", "X-Hub-Signature-256", "User-Agent", "Content-Type")


@pytest.fixture
def org_repo(organization, bob):
    repository = RepositoryFactory(namespace=Namespace.objects.get(organization=organization), name="app")
    admins = team(organization, name="admins")
    Membership.objects.create(team=admins, user=bob)
    TeamPermission.objects.create(repository=repository, team=admins, permission="admin")
    return repository


@pytest.fixture
def hook(make_hook, org_repo, receiver, loopback_allowed):
    return make_hook(receiver.url(), repository=org_repo, secret="a-very-long-secret-1234",
                     headers={"Authorization": TOKEN, "X-Env": "production"})


@pytest.fixture
def people(alice, bob):
    return {"alice": alice, "bob": bob}


def api_url(hook, tail: str = "") -> str:
    return f"/v2/repositories/{hook.repository.full_name}/webhooks/{hook.pk}/{tail}"


def page_url(hook, tail: str = "") -> str:
    return f"/r/{hook.repository.full_name}/webhooks/{hook.pk}{tail}"


def auth(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user)}"}


def patch(client, hook, user, data):
    return client.patch(api_url(hook), data, content_type="application/json", **auth(user))


def stored(hook) -> dict:
    return Webhook.objects.get(pk=hook.pk).headers


def form_data(hook, **changes) -> dict:
    data = {"name": hook.name, "url": hook.url, "events": hook.events, "active": "on",
            "headers": f"Authorization: {MASK}\nX-Env: {MASK}"}
    data.update(changes)
    return data


def ping_and_send(hook) -> Delivery:
    delivery = services.webhook_ping(webhook=hook)
    sending.delivery_sweep()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SUCCEEDED, delivery.error
    return delivery


# --- API: the webhook ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_api_shows_the_names_with_masked_values(client, hook, people, who):
    user = people[who]
    detail = client.get(api_url(hook), **auth(user))
    listing = client.get(f"/v2/repositories/{hook.repository.full_name}/webhooks/", **auth(user))
    assert detail.status_code == listing.status_code == 200
    assert detail.json()["headers"] == {"Authorization": MASK, "X-Env": MASK}
    assert listing.json()["results"][0]["headers"] == {"Authorization": MASK, "X-Env": MASK}
    for response in (detail, listing):
        assert TOKEN not in response.content.decode() and "production" not in response.content.decode()


def test_api_create_answers_with_masked_values(client, alice, org_repo):
    response = client.post(f"/v2/repositories/{org_repo.full_name}/webhooks/",
                           {"name": "ci", "hook_url": "https://ci.example.com/h", "headers": {"Authorization": TOKEN}},
                           content_type="application/json", **auth(alice))
    assert response.status_code == 201, response.content
    assert response.json()["headers"] == {"Authorization": MASK}
    assert Webhook.objects.get(pk=response.json()["id"]).headers == {"Authorization": TOKEN}


def test_api_get_edit_one_header_patch_back_keeps_the_other(client, hook, bob):
    headers = client.get(api_url(hook), **auth(bob)).json()["headers"]
    headers["X-Env"] = "staging"
    response = patch(client, hook, bob, {"headers": headers})
    assert response.status_code == 200, response.content
    assert response.json()["headers"] == {"Authorization": MASK, "X-Env": MASK}
    assert stored(hook) == {"Authorization": TOKEN, "X-Env": "staging"}


def test_api_mask_matches_the_name_in_any_case(client, hook, alice):
    assert patch(client, hook, alice, {"headers": {"authorization": MASK}}).status_code == 200
    assert stored(hook) == {"authorization": TOKEN}


def test_api_patch_headers_replaces_the_set(client, hook, alice):
    response = patch(client, hook, alice, {"headers": {"Authorization": "Bearer new-one", "X-Team": "infra"}})
    assert response.status_code == 200, response.content
    assert stored(hook) == {"Authorization": "Bearer new-one", "X-Team": "infra"}  # X-Env removed
    assert response.json()["headers"] == {"Authorization": MASK, "X-Team": MASK}


def test_api_patch_empty_headers_removes_them_all(client, hook, alice):
    assert patch(client, hook, alice, {"headers": {}}).status_code == 200
    assert stored(hook) == {}


def test_api_patch_without_headers_leaves_them(client, hook, alice):
    assert patch(client, hook, alice, {"name": "renamed", "hook_url": hook.url + "/v2"}).status_code == 200
    assert stored(hook) == {"Authorization": TOKEN, "X-Env": "production"}


def test_api_mask_without_a_saved_value_is_refused(client, hook, alice, org_repo):
    response = patch(client, hook, alice, {"headers": {"Authorization": MASK, "X-New": MASK}})
    assert response.status_code == 400 and "X-New" in response.json()["headers"][0]
    assert stored(hook) == {"Authorization": TOKEN, "X-Env": "production"}
    created = client.post(f"/v2/repositories/{org_repo.full_name}/webhooks/",
                          {"name": "x", "hook_url": "https://ci.example.com/h", "headers": {"X-Token": MASK}},
                          content_type="application/json", **auth(alice))
    assert created.status_code == 400 and "headers" in created.json()


def test_api_moving_the_url_to_another_host_needs_the_values_again(client, hook, bob):
    """Otherwise a second admin could read the credential by pointing the hook at a host of theirs."""
    for data in ({"hook_url": "https://elsewhere.example.net/h"},
                 {"hook_url": "https://elsewhere.example.net/h", "headers": {"Authorization": MASK}}):
        response = patch(client, hook, bob, data)
        assert response.status_code == 400 and "another host" in response.json()["headers"][0]
    hook.refresh_from_db()
    assert hook.url.startswith("http://127.0.0.1:") and stored(hook)["Authorization"] == TOKEN
    moved = patch(client, hook, bob, {"hook_url": "https://elsewhere.example.net/h",
                                      "headers": {"Authorization": "Bearer for-the-new-host"}})
    assert moved.status_code == 200, moved.content
    assert stored(hook) == {"Authorization": "Bearer for-the-new-host"}


def test_schema_documents_the_mask(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    for name in ("WebhookInputRequest", "PatchedWebhookInputRequest"):
        assert MASK in components[name]["properties"]["headers"]["description"]
    assert MASK in schema["paths"]["/v2/repositories/{namespace}/{name}/webhooks/{id}/"]["patch"]["description"]
    assert MASK in components["Webhook"]["properties"]["headers"]["description"]
    assert MASK in components["Delivery"]["properties"]["request_headers"]["description"]


# --- API: deliveries and redelivery ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_api_delivery_masks_custom_headers_and_shows_ours(client, hook, people, receiver, who):
    delivery = ping_and_send(hook)
    assert receiver.requests[-1].headers["Authorization"] == TOKEN  # the real value was sent
    response = client.get(api_url(hook, "deliveries/"), **auth(people[who]))
    shown = response.json()["results"][0]["request_headers"]
    assert shown["Authorization"] == shown["X-Env"] == MASK
    for name in OURS:
        assert shown[name] == delivery.request_headers[name] != MASK
    assert shown["X-Hub-Signature-256"].startswith("sha256=")
    assert TOKEN not in response.content.decode()


def test_api_redelivery_after_a_mask_round_trip_sends_the_saved_values(client, hook, bob, receiver):
    delivery = ping_and_send(hook)
    headers = client.get(api_url(hook), **auth(bob)).json()["headers"]
    assert patch(client, hook, bob, {"headers": headers, "name": "renamed"}).status_code == 200
    response = client.post(api_url(hook, f"deliveries/{delivery.pk}/redeliver"), **auth(bob))
    assert response.status_code == 202
    assert response.json()["request_headers"]["Authorization"] == MASK
    sending.delivery_sweep()
    copy = Delivery.objects.get(pk=response.json()["id"])
    assert copy.state == Delivery.State.SUCCEEDED and copy.request_headers["Authorization"] == TOKEN
    sent = receiver.requests[-1].headers
    assert sent["X-Hub-Delivery"] == str(copy.pk)
    assert (sent["Authorization"], sent["X-Env"]) == (TOKEN, "production")


# --- Web -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_edit_form_shows_the_names_with_masked_values(client, hook, people, who):
    client.force_login(people[who])
    page = client.get(page_url(hook)).content.decode()
    assert f"Authorization: {MASK}\nX-Env: {MASK}" in page
    assert TOKEN not in page and "production" not in page
    assert "is kept" in page  # the help text explains the convention


def test_saving_the_form_untouched_keeps_the_values(client, hook, bob):
    client.force_login(bob)
    response = client.post(page_url(hook), form_data(hook, name="renamed"))
    assert response.status_code == 302
    assert stored(hook) == {"Authorization": TOKEN, "X-Env": "production"}
    assert Webhook.objects.get(pk=hook.pk).name == "renamed"


def test_the_form_replaces_typed_values_and_removes_deleted_lines(client, hook, alice):
    client.force_login(alice)
    response = client.post(page_url(hook), form_data(hook, headers=f"Authorization: {MASK}\nX-Team: infra"))
    assert response.status_code == 302
    assert stored(hook) == {"Authorization": TOKEN, "X-Team": "infra"}
    client.post(page_url(hook), form_data(hook, headers="Authorization: Bearer typed-anew"))
    assert stored(hook) == {"Authorization": "Bearer typed-anew"}


def test_the_form_refuses_a_mask_for_a_new_header(client, hook, alice):
    client.force_login(alice)
    response = client.post(page_url(hook), form_data(hook, headers=f"X-New: {MASK}"))
    assert response.status_code == 400 and b"X-New has no saved value" in response.content
    assert stored(hook) == {"Authorization": TOKEN, "X-Env": "production"}


def test_the_form_needs_the_values_for_a_url_on_another_host(client, hook, bob):
    client.force_login(bob)
    response = client.post(page_url(hook), form_data(hook, url="https://elsewhere.example.net/h"))
    assert response.status_code == 400 and b"another host" in response.content
    assert TOKEN.encode() not in response.content
    hook.refresh_from_db()
    assert hook.url.startswith("http://127.0.0.1:") and stored(hook)["Authorization"] == TOKEN


def test_the_create_form_refuses_the_mask(client, alice, org_repo):
    client.force_login(alice)
    response = client.post(f"/r/{org_repo.full_name}/webhooks/new", {
        "name": "x", "url": "https://ci.example.com/h", "events": ["push"], "headers": f"X-Token: {MASK}"})
    assert response.status_code == 400 and b"X-Token has no saved value" in response.content
    assert not Webhook.objects.filter(name="x").exists()


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_delivery_page_masks_custom_headers_and_shows_ours(client, hook, people, who):
    delivery = ping_and_send(hook)
    client.force_login(people[who])
    page = client.get(page_url(hook, f"/deliveries/{delivery.pk}")).content.decode()
    assert f"Authorization: {MASK}" in page and f"X-Env: {MASK}" in page
    assert TOKEN not in page and "production" not in page
    assert "X-Hub-Event: ping" in page and f"X-Hub-Delivery: {delivery.pk}" in page
    assert f"X-Hub-Signature-256: {delivery.request_headers['X-Hub-Signature-256']}" in page
    assert "User-Agent: Wharf-Hookshot/1.0" in page and "Content-Type: application/json" in page


def test_web_redelivery_after_saving_the_form_sends_the_saved_values(client, hook, bob, receiver):
    delivery = ping_and_send(hook)
    client.force_login(bob)
    assert client.post(page_url(hook), form_data(hook)).status_code == 302
    response = client.post(page_url(hook, f"/deliveries/{delivery.pk}/redeliver"))
    copy = Delivery.objects.get(redelivery_of=delivery)
    assert response["Location"] == page_url(hook, f"/deliveries/{copy.pk}")
    sending.delivery_sweep()
    sent = receiver.requests[-1].headers
    assert sent["X-Hub-Delivery"] == str(copy.pk)
    assert (sent["Authorization"], sent["X-Env"]) == (TOKEN, "production")
    page = client.get(response["Location"]).content.decode()
    assert f"Authorization: {MASK}" in page and TOKEN not in page
