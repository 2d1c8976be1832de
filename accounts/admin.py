"""Django admin for accounts: users (with a deactivate action), organizations, teams, tokens, namespaces."""

from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from allauth.socialaccount.models import SocialApp, SocialToken
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import AccessToken, Membership, Namespace, Organization, Team, User

# The admin logs in through the site's login (its second factor, its failure budget), never its own form.
admin.site.login = secure_admin_login(admin.site.login)

# Single sign-on's providers come from HUB_OIDC_PROVIDERS only (accounts/sso.py ignores SocialApp rows), and
# provider tokens are not stored: the admin keeps only the linked identities (Social accounts).
for _model in (SocialApp, SocialToken):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        try:
            services.namespace_check_available(name=username)
        except ValidationError as error:
            raise ValidationError(error.messages) from None
        return username


class UserChangeAdminForm(UserChangeForm):
    website = forms.URLField(required=False, assume_scheme="https")

    class Meta(UserChangeForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = UserCreationAdminForm
    form = UserChangeAdminForm
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),)
    list_display = ["username", "email", "full_name", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["username", "email", "full_name"]
    actions = ["deactivate_users"]
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Profile", {"fields": ("full_name", "company", "location", "website", "default_private")}),
    )

    @admin.action(description="Deactivate selected users (they cannot sign in; their tokens are revoked)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            if user == request.user:
                self.message_user(request, "You cannot deactivate your own account.", messages.WARNING)
                continue
            services.user_deactivate(user=user)
            count += 1
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "can_create_repositories", "created_at"]
    list_filter = ["can_create_repositories"]
    search_fields = ["name", "organization__name"]
    inlines = [MembershipInline]


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0
    fields = ["name", "description", "can_create_repositories"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "full_name", "created_at"]
    search_fields = ["name", "full_name"]
    inlines = [TeamInline]

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return False  # deleting must go through accounts.services.organization_delete (tombstones the name)


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "user", "organization", "pull_limit", "storage_quota_bytes", "created_at",
                    "deleted_at"]
    list_filter = ["kind"]
    fields = ["name", "kind", "user", "organization", "pull_limit", "storage_quota_bytes", "created_at", "deleted_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "kind", "user", "organization", "created_at", "deleted_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Namespace | None = None) -> bool:
        return False  # names are never handed out twice


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ["label", "user", "scope", "token_hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["label", "user__username"]
    readonly_fields = ["user", "token_hint", "created_at", "last_used_at"]
    exclude = ["token_hash"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # secrets are created by their owner on the tokens page

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        for token in queryset:
            services.access_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)
