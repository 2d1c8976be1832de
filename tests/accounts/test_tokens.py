"""Personal access tokens: secret shown once, stored hashed, revocable, expiry in the future."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessToken
from accounts.services import access_token_authenticate, access_token_create, organization_create


def create(client, **data):
    payload = {"label": "laptop", "scope": "repo:write", "expires_on": ""}
    payload.update(data)
    return client.post(reverse("accounts:token_list"), payload, follow=True)


@pytest.mark.django_db
def test_tokens_page_empty_state(client, alice):
    client.force_login(alice)
    html = client.get(reverse("accounts:token_list")).content.decode()
    assert "No access tokens yet" in html
    empty_state = html[html.index("No access tokens yet"):]
    for client in ("docker", "podman", "skopeo"):
        assert f"{client} login" in empty_state and f"-u {alice.username}" in empty_state
    assert "the command-line clients (<code>docker login</code>," in html and "need an access token" in html


@pytest.mark.django_db
def test_create_shows_secret_once(client, alice):
    client.force_login(alice)
    response = create(client)
    assert response.redirect_chain == [(reverse("accounts:token_list") + "#new-token", 302)]
    secret = response.context["created_secret"]
    assert secret.startswith(AccessToken.PREFIX)
    assert secret in response.content.decode()
    assert secret not in client.get(reverse("accounts:token_list")).content.decode()


@pytest.mark.django_db
def test_reloading_after_create_neither_creates_another_token_nor_shows_the_secret(client, alice):
    """Post/redirect/get: the POST answers with a redirect, so a reload repeats the GET, not the creation."""
    client.force_login(alice)
    response = client.post(reverse("accounts:token_list"), {"label": "laptop", "scope": "repo:read"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:token_list") + "#new-token"
    assert AccessToken.PREFIX.encode() not in response.content
    first = client.get(response["Location"])
    secret = first.context["created_secret"]
    assert secret and secret in first.content.decode()
    reload = client.get(response["Location"])
    assert reload.context["created_secret"] is None and secret not in reload.content.decode()
    assert AccessToken.objects.filter(user=alice).count() == 1


@pytest.mark.django_db
def test_a_new_personal_token_is_not_shown_on_an_organization_page(client, alice):
    """The value kept for the personal page waits for it; another page's GET neither shows nor spends it."""
    organization = organization_create(owner=alice, name="acmeco")
    client.force_login(alice)
    client.post(reverse("accounts:token_list"), {"label": "laptop", "scope": "repo:read"})
    org_page = client.get(reverse("accounts:org_access_tokens", kwargs={"name": organization.name}))
    assert org_page.context["created_secret"] is None
    assert client.get(reverse("accounts:token_list")).context["created_secret"].startswith(AccessToken.PREFIX)


@pytest.mark.django_db
def test_create_stores_only_the_hash(client, alice):
    client.force_login(alice)
    secret = create(client).context["created_secret"]
    token = AccessToken.objects.get(user=alice)
    assert token.token_hash == AccessToken.hash_secret(secret)
    assert secret not in [str(value) for value in AccessToken.objects.values().get().values()]
    assert token.scope == "repo:write"
    assert token.label == "laptop"


@pytest.mark.django_db
def test_created_secret_authenticates(client, alice):
    client.force_login(alice)
    secret = create(client).context["created_secret"]
    assert access_token_authenticate(username=alice.username, secret=secret).user == alice


@pytest.mark.django_db
def test_create_with_future_expiry(client, alice):
    client.force_login(alice)
    day = (timezone.now() + timedelta(days=30)).date()
    create(client, expires_on=day.isoformat())
    token = AccessToken.objects.get(user=alice)
    assert token.expires_at.date() == day


@pytest.mark.django_db
def test_create_refuses_expiry_in_the_past(client, alice):
    client.force_login(alice)
    response = create(client, expires_on=(timezone.now() - timedelta(days=1)).date().isoformat())
    assert response.status_code == 400 and response.redirect_chain == []
    assert response.context["form"].errors["expires_on"] == ["The expiry date must be in the future."]
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_create_requires_label(client, alice):
    client.force_login(alice)
    response = create(client, label="")
    assert response.context["form"].errors["label"] == ["This field is required."]
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_create_refuses_unknown_scope(client, alice):
    client.force_login(alice)
    response = create(client, scope="repo:everything")
    assert response.context["form"].errors["scope"] == [
        "Select a valid choice. repo:everything is not one of the available choices."
    ]
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_list_shows_last_used(client, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(hours=2))
    client.force_login(alice)
    html = client.get(reverse("accounts:token_list")).content.decode()
    assert "2 hours ago" in html


@pytest.mark.django_db
def test_revoke(client, alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(alice)
    response = client.post(reverse("accounts:token_revoke", kwargs={"pk": token.pk}), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "The token “ci” has been revoked. Clients using it can no longer sign in."
    ]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert access_token_authenticate(username=alice.username, secret=secret) is None


@pytest.mark.django_db
def test_revoke_needs_post(client, alice):
    """GET only asks for confirmation (tests/accounts/test_token_revoke_confirm.py); other methods are refused."""
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(alice)
    assert client.get(reverse("accounts:token_revoke", kwargs={"pk": token.pk})).status_code == 200
    assert client.put(reverse("accounts:token_revoke", kwargs={"pk": token.pk})).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.django_db
def test_cannot_revoke_someone_elses_token(client, alice, charlie):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    client.force_login(charlie)
    assert client.post(reverse("accounts:token_revoke", kwargs={"pk": token.pk})).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.django_db
def test_a_builds_one_repository_token_is_not_revoked_from_the_token_page(client, alice):
    from accounts.models import Namespace
    from tests.factories import RepositoryFactory

    repository = RepositoryFactory(namespace=Namespace.objects.get(user=alice))
    token, _ = access_token_create(user=alice, label="build 7", scope="repo:write", repository=repository)
    client.force_login(alice)
    assert client.post(reverse("accounts:token_revoke", kwargs={"pk": token.pk})).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
