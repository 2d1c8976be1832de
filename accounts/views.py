"""Account settings, access tokens, organizations, teams and public profiles (HTML pages).

Views only parse input, call a service and pick a template; rules live in accounts.services.
"""

from __future__ import annotations

from allauth.account.views import LoginView as AllauthLoginView
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import services, token_once
from accounts.adapter import THROTTLED_ATTRIBUTE
from accounts.forms import (
    AccessTokenForm,
    AddMemberForm,
    ConfirmNameForm,
    OrganizationCreateForm,
    OrganizationProfileForm,
    ProfileForm,
    TeamForm,
    TeamSettingsForm,
)
from accounts.models import Membership, Namespace, Organization, Team, User
from registry import retention
from registry.views import retention as retention_views
from repositories.permissions import may_admin_organization
from repositories.selectors import profile_repositories


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- Login ----------------------------------------------------------------------------------


class LoginView(AllauthLoginView):
    """allauth's login (the admin's too), answering 429 with Retry-After while the account or the
    address has used its failure budget (accounts.throttles), like every other door."""

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        throttled = getattr(self.request, THROTTLED_ATTRIBUTE, None)
        if throttled is not None:
            response.status_code = 429
            response["Retry-After"] = str(throttled.retry_after)
        return response


# --- Account settings -----------------------------------------------------------------------


@login_required
def settings_profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile has been saved.")
        return redirect("accounts:settings")
    return render(request, "accounts/settings_profile.html", {"form": form, "section": "profile"})


@login_required
def account_delete(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ConfirmNameForm(request.POST or None, expected=user.username)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_delete(user=user)
        except ValidationError as error:
            form.add_error(None, _error_text(error))
        else:
            logout(request)
            messages.success(request, f"The account “{form.expected}” has been deleted. Its name will not be reused.")
            return redirect("home")
    return render(request, "accounts/account_delete.html", {"form": form, "section": "delete"})


# --- Personal access tokens -----------------------------------------------------------------

PERSONAL_TOKEN_KIND = "user"  # token_once's key for this page (an organization's page uses org:<pk>)


@never_cache
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """The list and the creation form. A creation redirects here (a reload never creates a second token),
    and this GET shows the new value once (accounts/token_once.py)."""
    form = AccessTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.access_token_create(
                user=request.user, label=form.cleaned_data["label"], scope=form.cleaned_data["scope"],
                expires_at=form.expires_at,
            )
        except ValidationError as error:
            field = "expires_on" if error.code == "expiry" else "label" if error.code == "label" else None
            form.add_error(field, _error_text(error))
        else:
            token_once.keep(request, kind=PERSONAL_TOKEN_KIND, token=token, secret=secret)
            return redirect(reverse("accounts:token_list") + "#new-token")
    tokens = services.user_access_tokens(user=request.user)
    created = token_once.take(request, kind=PERSONAL_TOKEN_KIND, tokens=tokens) if request.method != "POST" else None
    context = {
        "form": form,
        "tokens": tokens,
        "created_token": created[0] if created else None,
        "created_secret": created[1] if created else None,
        "has_mfa": services.user_has_mfa(request.user),
        "section": "tokens",
    }
    return render(request, "accounts/token_list.html", context, status=400 if request.method == "POST" else 200)


@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (naming the token and its last use); POST revokes."""
    # Only the tokens the page lists: a build's one-repository token is the build's to end.
    token = get_object_or_404(services.user_access_tokens(user=request.user), pk=pk)
    if request.method != "POST":
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
        if token.revoked_at:
            messages.info(request, f"The token “{token.label}” is already revoked.")
            return redirect("accounts:token_list")
        return render(request, "accounts/token_revoke.html", {"token": token, "section": "tokens"})
    services.access_token_revoke(token=token)
    messages.success(request, f"The token “{token.label}” has been revoked. Clients using it can no longer sign in.")
    return redirect("accounts:token_list")


# --- Organizations --------------------------------------------------------------------------


def _organization_for_member(request: HttpRequest, name: str) -> Organization:
    """The organization, if the signed-in user belongs to it; 404 otherwise (no existence leak)."""
    organization = get_object_or_404(Organization, name=name)
    if not organization.is_member(request.user):
        raise Http404("Not a member")
    return organization


def _organization_for_owner(request: HttpRequest, name: str) -> Organization:
    organization = _organization_for_member(request, name)
    if not may_admin_organization(request.user, organization):
        raise Http404("Not an owner")
    return organization


@login_required
def org_list(request: HttpRequest) -> HttpResponse:
    organizations = services.user_organizations(user=request.user)
    owned = set(
        Membership.objects.filter(user=request.user, team__name=Team.OWNERS).values_list(
            "team__organization_id", flat=True
        )
    )
    rows = [(organization, organization.id in owned) for organization in organizations]
    return render(request, "accounts/org_list.html", {"rows": rows})


@login_required
def org_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                name=form.cleaned_data["name"].strip(), owner=request.user,
                full_name=form.cleaned_data["full_name"].strip(),
            )
        except ValidationError as error:
            form.add_error("name", _error_text(error))
        else:
            messages.success(request, f"Organization “{organization.name}” created. You are its first owner.")
            return redirect("accounts:org_detail", name=organization.name)
    return render(request, "accounts/org_create.html", {"form": form})


@login_required
def org_detail(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_member(request, name)
    is_owner = may_admin_organization(request.user, organization)
    teams = organization.teams.prefetch_related("members").order_by("name")
    members = organization.members().order_by("username")
    owner_ids = set(organization.owners_team.members.values_list("id", flat=True))
    context = {
        "organization": organization,
        "is_owner": is_owner,
        "teams": teams,
        "members": [(member, member.id in owner_ids) for member in members],
        "tab": "overview",
    }
    return render(request, "accounts/org_detail.html", context)


@login_required
def org_settings(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    form = OrganizationProfileForm(request.POST or None, instance=organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Organization settings saved.")
        return redirect("accounts:org_settings", name=organization.name)
    delete_form = ConfirmNameForm(expected=organization.name)
    context = {"organization": organization, "form": form, "delete_form": delete_form, "is_owner": True,
               "tab": "settings", **_retention_context(organization)}
    return render(request, "accounts/org_settings.html", context)


def _retention_context(organization, shown=None) -> dict:
    policy = retention.policy_for_scope(namespace=organization.namespace)
    return {"retention": shown or retention_views.section(policy),
            "retention_action": reverse("accounts:org_retention", kwargs={"name": organization.name})}


@require_POST
@login_required
def org_retention(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    shown = retention_views.handle_post(request, retention.policy_for_scope(namespace=organization.namespace))
    if shown is None:
        return redirect(reverse("accounts:org_settings", kwargs={"name": organization.name}) + "#retention")
    context = {"organization": organization, "form": OrganizationProfileForm(instance=organization),
               "delete_form": ConfirmNameForm(expected=organization.name), "is_owner": True, "tab": "settings",
               **_retention_context(organization, shown)}
    return render(request, "accounts/org_settings.html", context, status=400 if shown.failed else 200)


@require_POST
@login_required
def org_leave(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_member(request, name)
    try:
        services.organization_leave(organization=organization, user=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
        return redirect("accounts:org_detail", name=organization.name)
    messages.success(request, f"You have left the organization “{organization.name}”.")
    return redirect("accounts:org_list")


@require_POST
@login_required
def org_delete(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    delete_form = ConfirmNameForm(request.POST, expected=organization.name)
    if delete_form.is_valid():
        try:
            services.organization_delete(organization=organization)
        except ValidationError as error:
            delete_form.add_error(None, _error_text(error))
        else:
            messages.success(request, f"The organization “{name}” has been deleted. Its name will not be reused.")
            return redirect("accounts:org_list")
    form = OrganizationProfileForm(instance=organization)
    context = {"organization": organization, "form": form, "delete_form": delete_form, "is_owner": True,
               "tab": "settings", **_retention_context(organization)}
    return render(request, "accounts/org_settings.html", context, status=400)


# --- Teams ----------------------------------------------------------------------------------


@login_required
def team_create(request: HttpRequest, name: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(organization=organization, **form.cleaned_data)
        except ValidationError as error:
            form.add_error("name", _error_text(error))
        else:
            messages.success(request, f"Team “{team.name}” created. Add its members below.")
            return redirect("accounts:team_detail", name=organization.name, team=team.name)
    context = {"organization": organization, "form": form, "is_owner": True, "tab": "teams"}
    return render(request, "accounts/team_create.html", context)


def _team_page(request: HttpRequest, team: Team, *, add_form: AddMemberForm | None = None,
               settings_form: TeamSettingsForm | None = None, status: int = 200) -> HttpResponse:
    organization = team.organization
    is_owner = may_admin_organization(request.user, organization)
    context = {
        "organization": organization,
        "team": team,
        "is_owner": is_owner,
        "members": team.members.order_by("username"),
        "add_form": add_form or AddMemberForm(),
        "settings_form": settings_form or TeamSettingsForm(
            initial={"description": team.description, "can_create_repositories": team.can_create_repositories}
        ),
        "tab": "teams",
    }
    return render(request, "accounts/team_detail.html", context, status=status)


def _get_team(organization: Organization, team_name: str) -> Team:
    return get_object_or_404(Team, organization=organization, name=team_name)


@login_required
def team_detail(request: HttpRequest, name: str, team: str) -> HttpResponse:
    organization = _organization_for_member(request, name)
    team_obj = _get_team(organization, team)
    if request.method == "POST":
        if not may_admin_organization(request.user, organization):
            raise Http404("Not an owner")
        settings_form = TeamSettingsForm(request.POST)
        if settings_form.is_valid():
            services.team_update(team=team_obj, **settings_form.cleaned_data)
            messages.success(request, f"Team “{team_obj.name}” saved.")
            return redirect("accounts:team_detail", name=organization.name, team=team_obj.name)
        return _team_page(request, team_obj, settings_form=settings_form, status=400)
    return _team_page(request, team_obj)


@require_POST
@login_required
def team_member_add(request: HttpRequest, name: str, team: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    team_obj = _get_team(organization, team)
    form = AddMemberForm(request.POST)
    if form.is_valid():
        try:
            membership = services.team_add_member(team=team_obj, username=form.cleaned_data["username"])
        except ValidationError as error:
            form.add_error("username", _error_text(error))
        else:
            messages.success(request, f"{membership.user.username} added to {team_obj.name}.")
            return redirect("accounts:team_detail", name=organization.name, team=team_obj.name)
    return _team_page(request, team_obj, add_form=form, status=400)


@require_POST
@login_required
def team_member_remove(request: HttpRequest, name: str, team: str, username: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    team_obj = _get_team(organization, team)
    user = get_object_or_404(User, username=username)
    try:
        services.team_remove_member(team=team_obj, user=user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, f"{user.username} removed from {team_obj.name}.")
    return redirect("accounts:team_detail", name=organization.name, team=team_obj.name)


@require_POST
@login_required
def team_delete(request: HttpRequest, name: str, team: str) -> HttpResponse:
    organization = _organization_for_owner(request, name)
    team_obj = _get_team(organization, team)
    try:
        services.team_delete(team=team_obj)
    except ValidationError as error:
        messages.error(request, _error_text(error))
        return redirect("accounts:team_detail", name=organization.name, team=team_obj.name)
    messages.success(request, f"Team “{team}” deleted.")
    return redirect("accounts:org_detail", name=organization.name)


# --- Public profiles ------------------------------------------------------------------------


def profile(request: HttpRequest, name: str) -> HttpResponse:
    """/u/<name>: a user's or an organization's public page."""
    namespace = get_object_or_404(Namespace.objects.select_related("user", "organization"), name=name)
    repositories = profile_repositories(namespace, request.user)
    if namespace.user is not None and namespace.user.is_active:
        context = {"namespace": namespace, "account": namespace.user, "is_organization": False,
                   "organizations": services.user_organizations(user=namespace.user),
                   "is_self": request.user == namespace.user, "profile_repositories": repositories}
        return render(request, "accounts/profile.html", context)
    if namespace.organization is not None:
        organization = namespace.organization
        context = {"namespace": namespace, "account": organization, "is_organization": True,
                   "members": organization.members().filter(is_active=True).order_by("username"),
                   "is_member": organization.is_member(request.user),
                   "manage_url": reverse("accounts:org_detail", kwargs={"name": organization.name}),
                   "profile_repositories": repositories}
        return render(request, "accounts/profile.html", context)
    raise Http404("No such user or organization")
