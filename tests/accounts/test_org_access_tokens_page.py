"""The organization access tokens page (owners): create with the value shown once, refusals next to the
field, revoke; members who are not owners and strangers get a 404."""

import pytest
from django.urls import reverse

from accounts.models import OrganizationAccessToken
from accounts.org_tokens import org_access_token_authenticate

pytestmark = pytest.mark.django_db


def page(org) -> str:
    return reverse("accounts:org_access_tokens", kwargs={"name": org.name})


def create(client, org, **data):
    payload = {"label": "ci", "description": "", "paths": f"{org.name}/app-*\n{org.name}/base", "access": "push",
               "expires_on": ""}
    payload.update(data)
    return client.post(page(org), payload)


def test_owner_creates_a_token_shown_once(client, alice, org):
    client.force_login(alice)
    settings_page = client.get(reverse("accounts:org_settings", kwargs={"name": org.name})).content.decode()
    assert page(org) in settings_page
    response = create(client, org, public="on")
    assert response.status_code == 201
    token = OrganizationAccessToken.objects.get(organization=org.organization)
    secret = response.context["created_secret"]
    assert secret in response.content.decode() and f"docker login -u {org.name}" in response.content.decode()
    assert token.resources == [
        {"type": "TYPE_REPO", "path": f"{org.name}/app-*", "scopes": ["scope-image-pull", "scope-image-push"]},
        {"type": "TYPE_REPO", "path": f"{org.name}/base", "scopes": ["scope-image-pull", "scope-image-push"]},
        {"type": "TYPE_REPO", "path": "*/*/public", "scopes": ["scope-image-pull"]},
    ]
    assert org_access_token_authenticate(username=org.name, secret=secret) == token
    again = client.get(page(org)).content.decode()
    assert secret not in again and "ci" in again and token.token_hint in again


def test_a_path_outside_the_organization_is_refused_next_to_the_field(client, alice, org):
    client.force_login(alice)
    response = create(client, org, paths=f"{alice.username}/app")
    assert response.status_code == 400
    assert "outside the organization" in response.context["form"].errors["paths"][0]
    assert not OrganizationAccessToken.objects.exists()


def test_revoke(client, alice, org):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    response = client.post(reverse("accounts:org_access_token_revoke", kwargs={"name": org.name, "pk": token.pk}))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "No organization access tokens yet" in client.get(page(org)).content.decode()


def test_members_who_are_not_owners_and_strangers_get_404(client, alice, org, charlie):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    revoke = reverse("accounts:org_access_token_revoke", kwargs={"name": org.name, "pk": token.pk})
    for user in (org.members["admin"], charlie):
        client.force_login(user)
        assert client.get(page(org)).status_code == 404
        assert create(client, org).status_code == 404
        assert client.post(revoke).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and OrganizationAccessToken.objects.count() == 1
