"""The organization access tokens page (owners): create (redirected to the list, the value shown once),
refusals next to the field, revoke after a confirmation; members who are not owners and strangers get a 404."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

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
    assert response.status_code == 302 and response["Location"] == page(org) + "#new-token"
    token = OrganizationAccessToken.objects.get(organization=org.organization)
    shown = client.get(page(org))  # the redirect's GET shows the value, once
    assert shown.status_code == 200 and shown.context["created_token"] == token
    secret = shown.context["created_secret"]
    assert secret in shown.content.decode() and f"docker login -u {org.name}" in shown.content.decode()
    assert token.resources == [
        {"type": "TYPE_REPO", "path": f"{org.name}/app-*", "scopes": ["scope-image-pull", "scope-image-push"]},
        {"type": "TYPE_REPO", "path": f"{org.name}/base", "scopes": ["scope-image-pull", "scope-image-push"]},
        {"type": "TYPE_REPO", "path": "*/*/public", "scopes": ["scope-image-pull"]},
    ]
    assert org_access_token_authenticate(username=org.name, secret=secret) == token
    again = client.get(page(org)).content.decode()  # a reload: the value is gone, no second token
    assert secret not in again and "ci" in again and token.token_hint in again
    assert OrganizationAccessToken.objects.count() == 1


def test_a_new_value_is_shown_only_on_its_own_organization_page(client, alice, org):
    from tests.factories import make_organization

    other = make_organization(alice)
    client.force_login(alice)
    create(client, org)
    other_page = client.get(page(other)).content.decode()
    assert "token-secret" not in other_page
    assert client.get(page(org)).context["created_secret"]  # still kept for its own page


def test_a_value_nobody_came_back_for_is_dropped(client, alice, org, monkeypatch):
    from accounts import token_once

    client.force_login(alice)
    create(client, org)
    monkeypatch.setattr(token_once, "KEEP_SECONDS", -1)
    assert client.get(page(org)).context["created_secret"] is None


def test_a_path_outside_the_organization_is_refused_next_to_the_field(client, alice, org):
    client.force_login(alice)
    response = create(client, org, paths=f"{alice.username}/app")
    assert response.status_code == 400
    assert "outside the organization" in response.context["form"].errors["paths"][0]
    assert not OrganizationAccessToken.objects.exists()


def revoke_url(org, token) -> str:
    return reverse("accounts:org_access_token_revoke", kwargs={"name": org.name, "pk": token.pk})


def test_the_list_links_to_a_confirmation_instead_of_revoking_in_one_click(client, alice, org):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    html = client.get(page(org)).content.decode()
    assert f'href="{revoke_url(org, token)}"' in html
    assert not re.search(rf'<form[^>]*action="{re.escape(revoke_url(org, token))}"', html)


def test_confirmation_names_the_token_its_repositories_and_last_use(client, alice, org):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    used = timezone.now() - timedelta(days=3)
    OrganizationAccessToken.objects.filter(pk=token.pk).update(last_used_at=used)
    response = client.get(revoke_url(org, token))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Revoke the token “ci”?" in html and f"…{token.token_hint}" in html
    assert f"{org.name}/app-*" in html and "pull &amp; push" in html and f"docker login -u {org.name}" in html
    assert "3 days ago" in html and used.strftime("%Y") in html and f"by {alice.username}" in html
    assert re.search(rf'<form method="post" action="{re.escape(revoke_url(org, token))}">\s*<input type="hidden" '
                     r'name="csrfmiddlewaretoken"', html)
    token.refresh_from_db()
    assert token.revoked_at is None  # asking revokes nothing


def test_confirmation_of_a_never_used_token_says_so(client, alice, org):
    client.force_login(alice)
    create(client, org)
    html = client.get(revoke_url(org, OrganizationAccessToken.objects.get())).content.decode()
    assert "Never: no client has signed in with it yet." in html


def test_revoke(client, alice, org):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    assert client.put(revoke_url(org, token)).status_code == 405
    response = client.post(revoke_url(org, token))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "No organization access tokens yet" in client.get(page(org)).content.decode()
    assert client.get(revoke_url(org, token)).status_code == 404  # a revoked token is gone


def test_members_who_are_not_owners_and_strangers_get_404(client, alice, org, charlie):
    client.force_login(alice)
    create(client, org)
    token = OrganizationAccessToken.objects.get()
    revoke = reverse("accounts:org_access_token_revoke", kwargs={"name": org.name, "pk": token.pk})
    for user in (org.members["admin"], charlie):
        client.force_login(user)
        assert client.get(page(org)).status_code == 404
        assert create(client, org).status_code == 404
        assert client.get(revoke).status_code == 404
        assert client.post(revoke).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and OrganizationAccessToken.objects.count() == 1
