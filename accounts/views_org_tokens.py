"""The organization access tokens page (owners): list, create (the value shown once, after a redirect) and
revoke (after a confirmation).

Everything it does goes through accounts/org_tokens.py, as the Hub API's `/v2/orgs/<org>/access-tokens` does.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts import token_once
from accounts.models import Organization
from accounts.org_tokens import (
    PUBLIC_PATH,
    SCOPE_PULL,
    SCOPE_PUSH,
    TYPE_REPO,
    org_access_token_create,
    org_access_token_revoke,
    organization_access_tokens,
)


class OrganizationAccessTokenForm(forms.Form):
    label = forms.CharField(label="Label", max_length=100,
                            help_text="What is this token for? For example “CI pipeline” or “deploy”.")
    description = forms.CharField(label="Description", max_length=255, required=False)
    paths = forms.CharField(
        label="Repositories", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: a repository of the organization (<org>/<name>) or a glob inside it "
                  "(<org>/* or <org>/web-*).")
    access = forms.ChoiceField(label="Access to these repositories", widget=forms.RadioSelect, initial="pull",
                               choices=[("pull", "Image pull"), ("push", "Image pull & push")])
    public = forms.BooleanField(label="Also pull every public repository (*/*/public)", required=False)
    expires_on = forms.DateField(label="Expiration date", required=False,
                                 help_text="Optional. The token stops working at 00:00 UTC on this date.",
                                 widget=forms.DateInput(attrs={"type": "date"}))

    def resources(self) -> list[dict]:
        scopes = [SCOPE_PULL, SCOPE_PUSH] if self.cleaned_data["access"] == "push" else [SCOPE_PULL]
        paths = [line.strip() for line in self.cleaned_data["paths"].splitlines() if line.strip()]
        resources = [{"type": TYPE_REPO, "path": path, "scopes": scopes} for path in paths]
        if self.cleaned_data["public"]:
            resources.append({"type": TYPE_REPO, "path": PUBLIC_PATH, "scopes": [SCOPE_PULL]})
        return resources

    @property
    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _organization_for_owner(request: HttpRequest, name: str) -> Organization:
    organization = get_object_or_404(Organization, name=name)
    if not organization.is_owner(request.user):
        raise Http404("Not an owner")  # members and strangers alike: the settings pages are the owners'
    return organization


def _kind(organization: Organization) -> str:
    return f"org:{organization.pk}"


@login_required
def org_access_tokens(request: HttpRequest, name: str) -> HttpResponse:
    """The list and the creation form. A creation redirects here (a reload never creates a second token),
    and this GET shows the new value once (accounts/token_once.py)."""
    organization = _organization_for_owner(request, name)
    form = OrganizationAccessTokenForm(request.POST or None, initial={"paths": f"{organization.name}/*"})
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = org_access_token_create(
                organization=organization, created_by=request.user, label=form.cleaned_data["label"],
                description=form.cleaned_data["description"], resources=form.resources(),
                expires_at=form.expires_at)
        except ValidationError as error:
            field = {"label": "label", "description": "description", "resources": "paths",
                     "expires_at": "expires_on"}.get(error.code)
            form.add_error(field, " ".join(error.messages))
        else:
            token_once.keep(request, kind=_kind(organization), token=token, secret=secret)
            return redirect(reverse("accounts:org_access_tokens", kwargs={"name": organization.name}) + "#new-token")
    tokens = organization_access_tokens(organization=organization).select_related("created_by")
    created = token_once.take(request, kind=_kind(organization), tokens=tokens) if request.method != "POST" else None
    context = {"organization": organization, "is_owner": True, "tab": "settings", "form": form, "tokens": tokens,
               "created_token": created[0] if created else None, "created_secret": created[1] if created else None}
    return render(request, "accounts/org_access_tokens.html", context, status=400 if request.method == "POST" else 200)


@login_required
def org_access_token_revoke_view(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """GET asks for confirmation (naming the token, what it may pull and push, and its last use), as the
    personal tokens do (templates/includes/token_revoke_confirm.html); POST revokes."""
    organization = _organization_for_owner(request, name)
    token = get_object_or_404(organization_access_tokens(organization=organization).select_related("created_by"),
                              pk=pk)
    if request.method != "POST":
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
        return render(request, "accounts/org_access_token_revoke.html",
                      {"organization": organization, "is_owner": True, "tab": "settings", "token": token})
    org_access_token_revoke(token=token)
    messages.success(request, f"The token “{token.label}” has been revoked. Clients using it can no longer sign in.")
    return redirect("accounts:org_access_tokens", name=organization.name)
