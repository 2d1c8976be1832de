"""Hub API shapes for builds: sources, rules and builds (input serializers validate, services act)."""

from __future__ import annotations

from rest_framework import serializers

from builds import constants
from builds.models import Build, BuildRule, BuildSource


class BuildSourceInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=1000)
    default_branch = serializers.CharField(max_length=255, default="main")
    webhook_secret = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    rotate_token = serializers.BooleanField(default=False)


class BuildSourceSerializer(serializers.ModelSerializer):
    trigger_url = serializers.SerializerMethodField()
    deploy_key = serializers.CharField(source="deploy_public_key")
    has_webhook_secret = serializers.SerializerMethodField()

    class Meta:
        model = BuildSource
        fields = ["url", "default_branch", "uuid", "trigger_url", "deploy_key", "has_webhook_secret", "created_at"]

    def get_trigger_url(self, source: BuildSource) -> str | None:
        """Only right after it is made (stored hashed): link again with rotate_token to get a new one."""
        return self.context.get("trigger_url")

    def get_has_webhook_secret(self, source: BuildSource) -> bool:
        return bool(source.webhook_secret)


class StringMapField(serializers.DictField):
    child = serializers.CharField(allow_blank=True, max_length=10000)


class BuildRuleSerializer(serializers.ModelSerializer):
    build_args = StringMapField(required=False)
    secrets = StringMapField(required=False, write_only=True)
    secret_names = serializers.SerializerMethodField()
    source_type = serializers.ChoiceField(choices=[c for c, _ in constants.SOURCE_TYPES], default=constants.BRANCH)

    class Meta:
        model = BuildRule
        fields = ["id", "source_type", "source", "docker_tag", "dockerfile", "context", "build_args", "secrets",
                  "secret_names", "enabled"]
        read_only_fields = ["id"]

    def get_secret_names(self, rule: BuildRule) -> list[str]:
        return sorted(rule.secrets)


class BuildSerializer(serializers.ModelSerializer):
    class Meta:
        model = Build
        fields = ["id", "state", "commit", "ref", "tag", "digest", "created", "started", "finished", "trigger",
                  "source_url", "signature_tag", "error"]


class BuildDetailSerializer(BuildSerializer):
    log = serializers.SerializerMethodField()

    class Meta(BuildSerializer.Meta):
        fields = [*BuildSerializer.Meta.fields, "log"]

    def get_log(self, build: Build) -> str:
        return self.context.get("log", "")


class BuildStartSerializer(serializers.Serializer):
    ref = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    commit = serializers.RegexField(r"^[0-9a-fA-F]{7,64}$", required=False, allow_blank=True, default="")
