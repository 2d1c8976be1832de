"""Automated builds: a repository's Git source, its build rules, and the builds (a state machine)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from builds import constants
from builds.tags import RuleSpec
from lib.fields import EncryptedJSONField, EncryptedTextField


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BuildSource(models.Model):
    """The Git repository a Wharf repository builds from. `uuid` names it in the trigger URL."""

    repository = models.OneToOneField("repositories.Repository", on_delete=models.CASCADE,
                                      related_name="build_source")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    url = models.CharField(max_length=1000)
    default_branch = models.CharField(max_length=255, default="main")
    # The trigger URL's token, stored hashed; rotatable. Shown once, when it is made.
    token_hash = models.CharField(max_length=64)
    # HMAC secret for X-Hub-Signature-256 (GitHub, and the shipped hooks when set). Needed in clear to verify,
    # so encrypted at rest (lib/crypto.py), like the deploy key's private half.
    webhook_secret = EncryptedTextField(max_length=200, blank=True)
    deploy_public_key = models.TextField(blank=True)
    deploy_private_key = EncryptedTextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.repository}: {self.url}"

    def rotate_token(self) -> str:
        """A new trigger token (the old URL stops working); returns the token, which is not stored."""
        token = secrets.token_urlsafe(24)
        self.token_hash = hash_token(token)
        return token

    def token_matches(self, token: str) -> bool:
        return secrets.compare_digest(self.token_hash, hash_token(token))

    @property
    def is_ssh(self) -> bool:
        return self.url.startswith("ssh://") or ("@" in self.url and "://" not in self.url)


class BuildRule(models.Model):
    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="build_rules")
    source_type = models.CharField(max_length=6, choices=constants.SOURCE_TYPES, default=constants.BRANCH)
    source = models.CharField(max_length=255)
    docker_tag = models.CharField(max_length=255, default="latest")
    dockerfile = models.CharField(max_length=500, default="Dockerfile")
    context = models.CharField(max_length=500, default=".")
    build_args = models.JSONField(default=dict, blank=True)
    # {"id": "value"}: passed with `buildah bud --secret`, never returned by the API once saved; encrypted.
    secrets = EncryptedJSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.repository}: {self.source_type} {self.source} → {self.docker_tag}"

    def as_spec(self) -> RuleSpec:
        return RuleSpec(source_type=self.source_type, source=self.source, docker_tag=self.docker_tag,
                        enabled=self.enabled, id=self.pk)


class Build(models.Model):
    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="builds")
    rule = models.ForeignKey(BuildRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds")
    state = models.CharField(max_length=10, choices=constants.STATES, default=constants.QUEUED, db_index=True)
    trigger = models.CharField(max_length=10, choices=constants.TRIGGERS, default=constants.TRIGGER_MANUAL)
    source_url = models.CharField(max_length=1000)
    commit = models.CharField(max_length=64, blank=True)
    ref = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    tag = models.CharField(max_length=128)
    dockerfile = models.CharField(max_length=500, default="Dockerfile")
    context = models.CharField(max_length=500, default=".")
    build_args = models.JSONField(default=dict, blank=True)
    digest = models.CharField(max_length=135, blank=True)
    signature_tag = models.CharField(max_length=140, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # The build worker's one-build token (hashed), rotated each time the build is sent to the queue.
    worker_token_hash = models.CharField(max_length=64, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)  # when it was last sent to the queue
    # The registry token the build pushes with (this repository only); revoked when the build ends.
    push_token = models.ForeignKey("accounts.AccessToken", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    log_archived = models.BooleanField(default=False)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["repository", "-created"])]

    def __str__(self) -> str:
        return f"build {self.pk} of {self.repository}:{self.tag} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in constants.FINAL

    @property
    def log_name(self) -> str:
        return f"{self.repository_id}/{self.pk}.log"

    # Transitions: each one saves.

    def mark(self, state: str) -> None:
        """Move to a running state (cloning, building, pushing, signing)."""
        if self.is_final:
            return
        values = {"state": state}
        if self.started is None:
            values["started"] = timezone.now()
        # Only while the row is not final either: a report read before the build ended must not reopen it.
        if type(self).objects.filter(pk=self.pk).exclude(state__in=constants.FINAL).update(**values):
            for name, value in values.items():
                setattr(self, name, value)

    def finish(self, state: str, *, digest: str = "", error: str = "", signature_tag: str = "") -> None:
        if state not in constants.FINAL:
            raise ValueError(f"{state!r} is not a final state")
        self.state = state
        self.digest = digest or self.digest
        self.error = error[:4000]
        self.signature_tag = signature_tag or self.signature_tag
        self.finished = timezone.now()
        self.save(update_fields=["state", "digest", "error", "signature_tag", "finished"])


class BuildLogLine(models.Model):
    """The live log of a build in the embedded default (no Redis): append-only, read with ?start=N."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="log_lines")
    text = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text
