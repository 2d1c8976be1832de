"""Hub API shapes for repositories, tags, stars, collaborators, team permissions, stats and search.

Output serializers follow Docker Hub's JSON (REFERENCE.md §4); input serializers validate and the
views then call repositories.services.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import Tag
from repositories.models import TeamPermission, validate_repository_name
from repositories.permissions import ADMIN, PULL, PUSH, repository_actions

ORDERINGS = ("name", "-name", "last_updated", "-last_updated", "pull_count", "-pull_count")
TAG_ORDERINGS = ("name", "-name", "last_updated", "-last_updated")


class UTCDateTimeField(serializers.DateTimeField):
    """Times in UTC, as Docker Hub gives them (`…Z`). The site's time zone is UTC anyway; naming it
    spares DRF looking up the current time zone for every value (a page of 100 repositories or
    tags has 200 of them)."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=dt.UTC, **kwargs)


class PermissionsSerializer(serializers.Serializer):
    read = serializers.BooleanField()
    write = serializers.BooleanField()
    admin = serializers.BooleanField()


class CategorySerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()


class ImmutableTagsSettingsSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    rules = serializers.ListField(child=serializers.CharField())


class RepositorySerializer(serializers.Serializer):
    """A repository as Docker Hub shows it. Needs `actor` in the context (for permissions).

    A list passes `actions_by_id` too (`repository_actions_many` for the page) so permissions cost
    no query per row.
    """

    name = serializers.CharField()
    namespace = serializers.CharField(source="namespace.name")
    user = serializers.CharField(source="namespace.name")
    repository_type = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    status_description = serializers.SerializerMethodField()
    description = serializers.CharField()
    full_description = serializers.CharField()
    is_private = serializers.BooleanField()
    is_automated = serializers.BooleanField()
    star_count = serializers.IntegerField()
    pull_count = serializers.IntegerField()
    last_updated = UTCDateTimeField(source="last_pushed_at", allow_null=True)
    date_registered = UTCDateTimeField(source="created_at")
    collaborator_count = serializers.SerializerMethodField()
    has_starred = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    categories = serializers.SerializerMethodField()
    storage_size = serializers.SerializerMethodField()
    immutable_tags_settings = serializers.SerializerMethodField()

    @extend_schema_field(ImmutableTagsSettingsSerializer)
    def get_immutable_tags_settings(self, obj) -> dict:
        return {"enabled": bool(obj.immutable_tags), "rules": list(obj.immutable_tags_rules or [])}

    def get_repository_type(self, obj) -> str:
        return "image"

    def get_status(self, obj) -> int:
        return 1

    def get_status_description(self, obj) -> str:
        return "active"

    def get_collaborator_count(self, obj) -> int:
        return int(getattr(obj, "api_collaborator_count", 0) or 0)

    def get_has_starred(self, obj) -> bool:
        return bool(getattr(obj, "api_has_starred", False))

    @extend_schema_field(PermissionsSerializer)
    def get_permissions(self, obj) -> dict:
        actions_by_id = self.context.get("actions_by_id")
        if actions_by_id is not None and obj.pk in actions_by_id:
            actions = actions_by_id[obj.pk]
        else:
            actions = repository_actions(self.context["actor"], obj)
        return {"read": PULL in actions, "write": PUSH in actions, "admin": ADMIN in actions}

    @extend_schema_field(CategorySerializer(many=True))
    def get_categories(self, obj) -> list:
        return []

    def get_storage_size(self, obj) -> int:
        return int(getattr(obj, "api_storage_size", 0) or 0)

    def to_representation(self, obj) -> dict:
        """The fields above, built directly: DRF's per-field machinery was most of the time of a page
        of 100 repositories (about 0.3 ms a row). Same keys, values and formats as the declarations."""
        dates = self.fields["date_registered"]
        namespace = obj.namespace.name
        return {
            "name": obj.name, "namespace": namespace, "user": namespace, "repository_type": "image",
            "status": 1, "status_description": "active", "description": obj.description,
            "full_description": obj.full_description, "is_private": obj.is_private,
            "is_automated": obj.is_automated, "star_count": int(obj.star_count), "pull_count": int(obj.pull_count),
            "last_updated": dates.to_representation(obj.last_pushed_at) if obj.last_pushed_at else None,
            "date_registered": dates.to_representation(obj.created_at),
            "collaborator_count": self.get_collaborator_count(obj), "has_starred": self.get_has_starred(obj),
            "permissions": self.get_permissions(obj), "categories": [], "storage_size": self.get_storage_size(obj),
            "immutable_tags_settings": self.get_immutable_tags_settings(obj),
        }


class RepositoryListQuerySerializer(serializers.Serializer):
    ordering = serializers.ChoiceField(choices=ORDERINGS, required=False,
                                       help_text="name, last_updated or pull_count; prefix `-` to reverse.")


class RepositoryCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    full_description = serializers.CharField(max_length=25000, required=False, allow_blank=True, default="")
    is_private = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate_name(self, value: str) -> str:
        try:
            validate_repository_name(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value


class LegacyRepositoryCreateSerializer(RepositoryCreateSerializer):
    """`POST /v2/repositories/`: the namespace comes in the body (Docker Hub's older shape)."""

    namespace = serializers.RegexField(r"^[a-z0-9]+$", max_length=255,
                                       help_text="The user or organization to create the repository in.")


class RepositoryUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=100, required=False, allow_blank=True)
    full_description = serializers.CharField(max_length=25000, required=False, allow_blank=True)
    is_private = serializers.BooleanField(required=False)


class TagImageSerializer(serializers.Serializer):
    architecture = serializers.CharField()
    os = serializers.CharField()
    variant = serializers.CharField(allow_null=True)
    digest = serializers.CharField(allow_null=True)
    size = serializers.IntegerField()
    status = serializers.CharField()
    last_pushed = UTCDateTimeField(allow_null=True)
    last_pulled = UTCDateTimeField(allow_null=True)


class TagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    repository = serializers.IntegerField(source="repository_id")
    v2 = serializers.SerializerMethodField()
    content_type = serializers.SerializerMethodField()
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    full_size = serializers.IntegerField(source="manifest.total_size")
    last_updated = UTCDateTimeField(source="pushed_at")
    last_updater_username = serializers.SerializerMethodField()
    tag_status = serializers.SerializerMethodField()
    tag_last_pulled = UTCDateTimeField(source="last_pulled_at", allow_null=True)
    tag_last_pushed = UTCDateTimeField(source="pushed_at")
    images = serializers.SerializerMethodField()

    def get_v2(self, obj) -> bool:
        return True

    def get_content_type(self, obj) -> str:
        return "image"

    def get_tag_status(self, obj) -> str:
        return "active"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_last_updater_username(self, obj: Tag) -> str | None:
        return obj.pushed_by.username if obj.pushed_by_id else None

    @extend_schema_field(TagImageSerializer(many=True))
    def get_images(self, obj: Tag) -> list[dict]:
        images = []
        for platform in obj.manifest.platforms or []:
            if not isinstance(platform, dict):
                continue
            images.append({
                "architecture": str(platform.get("architecture") or ""),
                "os": str(platform.get("os") or ""),
                "variant": platform.get("variant") or None,
                "digest": platform.get("digest") or obj.manifest.digest,
                "size": int(platform.get("size") or 0),
                "status": "active",
                "last_pushed": obj.pushed_at,
                "last_pulled": obj.last_pulled_at,
            })
        return TagImageSerializer(images, many=True).data


class TagListQuerySerializer(serializers.Serializer):
    ordering = serializers.ChoiceField(choices=TAG_ORDERINGS, required=False)
    name = serializers.CharField(required=False, max_length=128, help_text="Only tags whose name contains this.")


class StarSerializer(serializers.Serializer):
    has_starred = serializers.BooleanField()
    star_count = serializers.IntegerField()


class CollaboratorSerializer(serializers.Serializer):
    user = serializers.CharField(source="user.username")
    permission = serializers.SerializerMethodField()
    date_added = UTCDateTimeField(source="created_at")

    def get_permission(self, obj) -> str:
        return "write"


class CollaboratorCreateSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150)


class GroupPermissionSerializer(serializers.Serializer):
    group_id = serializers.IntegerField(source="team_id")
    group_name = serializers.CharField(source="team.name")
    permission = serializers.CharField()


class GroupPermissionCreateSerializer(serializers.Serializer):
    group_name = serializers.CharField(required=False, max_length=30)
    group_id = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    permission = serializers.ChoiceField(choices=TeamPermission.Level.values)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("group_name") and not attrs.get("group_id"):
            raise serializers.ValidationError({"group_name": ["Give group_name or group_id."]})
        return attrs


class DailyPullsSerializer(serializers.Serializer):
    date = serializers.DateField()
    pull_count = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    pull_count = serializers.IntegerField(help_text="All-time pulls of the repository.")
    pulls_in_period = serializers.IntegerField()
    star_count = serializers.IntegerField()
    results = DailyPullsSerializer(many=True)


class StatsQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, min_value=1, max_value=365, default=30)


class SearchQuerySerializer(serializers.Serializer):
    query = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")


class SearchResultSerializer(serializers.Serializer):
    repo_name = serializers.CharField(source="display_name")
    short_description = serializers.CharField(source="description")
    star_count = serializers.IntegerField()
    pull_count = serializers.IntegerField()
    repo_owner = serializers.CharField(source="namespace.name")
    is_official = serializers.BooleanField()
    is_automated = serializers.BooleanField()
    is_private = serializers.BooleanField()


class ImmutableTagsSerializer(serializers.Serializer):
    """Docker Hub's `PATCH …/immutabletags` body."""

    immutable_tags = serializers.BooleanField()
    immutable_tags_rules = serializers.ListField(child=serializers.CharField(allow_blank=False, max_length=1000),
                                                 required=False, default=list, max_length=100)
