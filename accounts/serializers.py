"""Hub API shapes for logins, users, organizations, teams and personal access tokens (Docker Hub's JSON)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import AccessToken
from accounts.names import NAMESPACE_RE

SCOPE_ORDER = [AccessToken.Scope.PUBLIC_READ, AccessToken.Scope.READ, AccessToken.Scope.WRITE,
               AccessToken.Scope.ADMIN]


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)


class LoginResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class AuthTokenSerializer(serializers.Serializer):
    identifier = serializers.CharField(max_length=254, help_text="Username or email address.")
    secret = serializers.CharField(max_length=1024, trim_whitespace=False,
                                   help_text="A personal access token (or the password, without 2FA).")


class AuthTokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()


class AccountSerializer(serializers.Serializer):
    """A user or an organization, as `/v2/users/<name>/` shows either."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    full_name = serializers.CharField()
    location = serializers.CharField()
    company = serializers.CharField()
    profile_url = serializers.CharField()
    date_joined = serializers.DateTimeField()
    type = serializers.ChoiceField(choices=["User", "Organization"])


def account_data(*, id: int, username: str, full_name: str, location: str, company: str, date_joined,
                 type: str) -> dict:
    return {"id": id, "username": username, "full_name": full_name, "location": location, "company": company,
            "profile_url": f"{settings.HUB_PUBLIC_URL}/u/{username}", "date_joined": date_joined, "type": type}


def user_data(user) -> dict:
    return account_data(id=user.pk, username=user.username, full_name=user.full_name, location=user.location,
                        company=user.company, date_joined=user.date_joined, type="User")


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    orgname = serializers.CharField(source="name")
    full_name = serializers.CharField()
    location = serializers.CharField()
    company = serializers.CharField()
    profile_url = serializers.SerializerMethodField()
    date_joined = serializers.DateTimeField(source="created_at")
    type = serializers.SerializerMethodField()

    def get_profile_url(self, obj) -> str:
        return f"{settings.HUB_PUBLIC_URL}/u/{obj.name}"

    def get_type(self, obj) -> str:
        return "Organization"


@extend_schema_field({"type": "string", "pattern": NAMESPACE_RE.pattern, "minLength": 4, "maxLength": 30})
class NamespaceNameField(serializers.CharField):
    """A user or organization name: the schema states the rule; the service explains a name that breaks it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=30, **kwargs)


class OrganizationCreateSerializer(serializers.Serializer):
    """Docker Hub's `orgname` (or `name`), and the profile fields of the new organization."""

    orgname = NamespaceNameField(required=False, help_text="The organization's name (its namespace): 4–30 "
                                                           "lowercase letters and digits.")
    name = NamespaceNameField(required=False, help_text="Another name for `orgname`.")
    full_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    company = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    location = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        orgname, name = attrs.pop("orgname", None), attrs.pop("name", None)
        if orgname is None and name is None:
            raise serializers.ValidationError({"orgname": [self.fields["orgname"].error_messages["required"]]})
        if orgname is not None and name is not None and orgname != name:
            raise serializers.ValidationError({"name": ["Give `orgname` or `name`, not two different names."]})
        attrs["name"] = orgname if orgname is not None else name
        return attrs

    @property
    def name_field(self) -> str:
        """The field the caller named the organization with, for the service's errors."""
        return "orgname" if "orgname" in self.initial_data else "name"


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    member_count = serializers.SerializerMethodField()
    can_create_repositories = serializers.BooleanField()

    def get_member_count(self, obj) -> int:
        return obj.memberships.count()


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=30)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    can_create_repositories = serializers.BooleanField(required=False, default=False)


class TeamUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=30, required=False, help_text="1–30 letters, digits, '-' or '_'.")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    can_create_repositories = serializers.BooleanField(required=False)


class MemberCreateSerializer(serializers.Serializer):
    member = serializers.CharField(max_length=150, help_text="A username.")


class AccessTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    uuid = serializers.SerializerMethodField(help_text="The token's id, as a string (Docker Hub's field name).")
    token_label = serializers.CharField(source="label")
    scopes = serializers.SerializerMethodField()
    is_active = serializers.SerializerMethodField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used = serializers.DateTimeField(source="last_used_at", allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    token = serializers.SerializerMethodField(help_text="The secret: only in the answer to POST, else empty.")

    def get_uuid(self, obj) -> str:
        return str(obj.pk)

    def get_scopes(self, obj) -> list[str]:
        return [obj.scope]

    def get_is_active(self, obj) -> bool:
        return obj.is_active()

    def get_token(self, obj) -> str:
        return self.context.get("secret", "")


class AccessTokenCreateSerializer(serializers.Serializer):
    token_label = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=AccessToken.Scope.values),
                                   required=False, min_length=1, max_length=4,
                                   default=lambda: [AccessToken.Scope.READ])
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_scopes(self, value: list[str]) -> str:
        """Docker Hub sends a list; the broadest scope asked is the token's scope."""
        return max(value, key=SCOPE_ORDER.index)


class AccessTokenUpdateSerializer(serializers.Serializer):
    token_label = serializers.CharField(max_length=100, required=False)
    is_active = serializers.BooleanField(required=False)


class PullLimitSerializer(serializers.Serializer):
    """An account's or organization's plan: pulls per window (0 unlimited; null the site's default)."""

    pull_limit = serializers.IntegerField(min_value=0, max_value=2**31 - 1, allow_null=True)


class StorageQuotaSerializer(serializers.Serializer):
    """An account's or organization's storage quota in bytes (0 none; null the site's default)."""

    quota_bytes = serializers.IntegerField(min_value=0, max_value=2**63 - 1, allow_null=True)


class StorageSerializer(StorageQuotaSerializer):
    namespace = serializers.CharField(read_only=True)
    usage_bytes = serializers.IntegerField(read_only=True)
    default_quota_bytes = serializers.IntegerField(read_only=True)
