"""Accounts, organizations, teams, namespaces and personal access tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.names import validate_namespace_name
from accounts.revocation import credentials_revoked


class User(AbstractUser):
    """A person. Their username is also their namespace (see Namespace)."""

    username = models.CharField(
        "username",
        max_length=30,
        unique=True,
        validators=[validate_namespace_name],
        help_text="4–30 lowercase letters and digits. This is also your namespace: <name>/<repository>.",
        error_messages={"unique": "That username is already taken."},
    )
    email = models.EmailField("email address", blank=True)
    full_name = models.CharField(max_length=150, blank=True)
    company = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=100, blank=True)
    website = models.URLField(blank=True)
    default_private = models.BooleanField(
        default=False, help_text="New repositories created by a push are private."
    )
    # Moves when the password changes, two-factor authentication is turned on or the account is
    # deactivated: every credential derived from the password (sessions, Hub API JWTs, refresh and
    # registry tokens) carries the value it was issued at and dies when it moves.
    credentials_epoch = models.PositiveBigIntegerField(default=0, editable=False)

    objects = UserManager()

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    def save(self, *args, **kwargs) -> None:
        # A user always owns the namespace of their name; claiming it in the same transaction
        # means a name taken by an organization or a tombstone makes the whole save fail.
        creating = self._state.adding
        # set_password() leaves the new password in `_password` until saved (a rehash on login does not).
        ends_credentials = not creating and (self._password is not None or not self.is_active)
        if not creating:
            update_fields = kwargs.get("update_fields")
            if ends_credentials:
                self.credentials_epoch = models.F("credentials_epoch") + 1
                if update_fields is not None:
                    kwargs["update_fields"] = {*update_fields, "credentials_epoch"}
            elif update_fields is None:
                # Never write back an epoch read before someone else moved it.
                skipped = {"credentials_epoch", *self.get_deferred_fields()}
                kwargs["update_fields"] = [field.attname for field in self._meta.concrete_fields
                                           if not field.primary_key and field.attname not in skipped]
        with transaction.atomic():
            super().save(*args, **kwargs)
            if creating:
                Namespace.objects.create(name=self.username, kind=Namespace.Kind.USER, user=self)
        if ends_credentials:
            self.refresh_from_db(fields=["credentials_epoch"])
            credentials_revoked()

    def get_session_auth_hash(self) -> str:
        """Django's (an HMAC of the password hash), which also changes with the credentials epoch, so
        the sessions logged in before the epoch moved are logged out."""
        if not self.credentials_epoch:
            return super().get_session_auth_hash()
        return self._epoch_session_hash(secret=None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        """The same with each of SECRET_KEY_FALLBACKS (Django accepts those after a key rotation): with
        Django's own, a session signed before a rotation would outlive the epoch moving."""
        if not self.credentials_epoch:
            yield from super().get_session_auth_fallback_hash()
            return
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._epoch_session_hash(secret=secret)

    def _epoch_session_hash(self, *, secret: str | None) -> str:
        return salted_hmac("wharf.accounts.session", f"{self.password}\0{self.credentials_epoch}", secret=secret,
                           algorithm="sha256").hexdigest()

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class Namespace(models.Model):
    """One row per name ever used by a user or an organization: names are never handed out twice.

    When an account or organization is deleted its row stays as a tombstone (owner links empty,
    `deleted_at` set), so nobody can later publish under a name people already pull.
    """

    class Kind(models.TextChoices):
        USER = "user", "User"
        ORGANIZATION = "org", "Organization"
        LIBRARY = "library", "Official images"
        MIRROR = "mirror", "Mirror of another registry"  # a HUB_MIRRORS prefix (registry/mirror)

    name = models.CharField(max_length=30, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="namespace"
    )
    organization = models.OneToOneField(
        "accounts.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="namespace"
    )
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The account's or organization's plan: pulls per HUB_PULL_LIMIT_WINDOW_SECONDS for its signed-in
    # clients (an organization's applies to its members). Empty: the site's HUB_PULL_LIMIT_USER; 0: none.
    pull_limit = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Pulls per window for this account (an organization's: for each of its members). "
                  "Empty: the site's default; 0: unlimited. Used only while pull limits are on.")
    # The account's or organization's storage quota (registry/services/quotas.py). Empty: the site's
    # HUB_NAMESPACE_QUOTA_BYTES; 0: none.
    storage_quota_bytes = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Storage quota in bytes for this account or organization (its repositories' blobs, uploads "
                  "in progress and recent unreferenced blobs). Empty: the site's default; 0: unlimited.")
    # When the owners were told (one email) that usage passed 80% of the quota; cleared when a push sees
    # it below 80% again, so the next crossing is told too.
    storage_warned_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        # The rare kinds are looked up by kind: the official images (explore, search's official
        # filter) and the mirrors; without it each lookup reads every account's row.
        indexes = [models.Index(fields=["kind"], name="namespace_kind")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_tombstone(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_library(self) -> bool:
        return self.kind == self.Kind.LIBRARY


class Organization(models.Model):
    name = models.CharField(max_length=30, unique=True, validators=[validate_namespace_name])
    full_name = models.CharField(max_length=150, blank=True)
    company = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=100, blank=True)
    website = models.URLField(blank=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    default_private = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return self.full_name or self.name

    @property
    def owners_team(self) -> Team:
        return self.teams.get(name=Team.OWNERS)

    def is_owner(self, user) -> bool:
        if not getattr(user, "is_authenticated", False):
            return False
        return Membership.objects.filter(team__organization=self, team__name=Team.OWNERS, user=user).exists()

    def is_member(self, user) -> bool:
        if not getattr(user, "is_authenticated", False):
            return False
        return Membership.objects.filter(team__organization=self, user=user).exists()

    def members(self) -> models.QuerySet:
        return User.objects.filter(memberships__team__organization=self).distinct()


class Team(models.Model):
    OWNERS = "owners"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=30)
    description = models.CharField(max_length=255, blank=True)
    can_create_repositories = models.BooleanField(
        default=False, help_text="Members may create repositories in the organization."
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name")]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"

    @property
    def is_owners(self) -> bool:
        return self.name == self.OWNERS


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}"


class AccessTokenQuerySet(models.QuerySet):
    def personal(self) -> AccessTokenQuerySet:
        """The tokens people made, without those the hub makes for one build (they die with it)."""
        return self.filter(repository__isnull=True)


class AccessToken(models.Model):
    """A personal access token: usable wherever a password is, capped by its scope."""

    class Scope(models.TextChoices):
        PUBLIC_READ = "repo:public_read", "Public repositories, read-only"
        READ = "repo:read", "Read-only"
        WRITE = "repo:write", "Read & write"
        ADMIN = "repo:admin", "Read, write & delete"

    PREFIX = "whf_pat_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    label = models.CharField(max_length=100)
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.READ)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=16, editable=False, help_text="The last characters, for recognition.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # When set, the token pushes (and deletes, administers) only this repository; elsewhere it pulls
    # at most. Automated builds get such a token, valid for one build.
    repository = models.ForeignKey("repositories.Repository", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="+")

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.label} ({self.user})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        # Tokens carry 256 bits of randomness: a fast keyed hash is the right tool (no brute force).
        return hmac.new(b"wharf-access-token", secret.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def generate_secret(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @classmethod
    def looks_like_token(cls, value: str) -> bool:
        return value.startswith(cls.PREFIX)

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class AuditEvent(models.Model):
    """One change, for the audit log of the account or organization it belongs to (accounts/audit.py).

    `account` is the namespace whose log shows it; `actor_name` stays when the actor's account is
    deleted. `address` is shown only in an account's own log, never in an organization's.
    """

    account = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="audit_events")
    action = models.CharField(max_length=64)
    name = models.CharField(max_length=300, blank=True)  # what it is about: `acme/app`, `acme/app:v1`, a team
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-timestamp", "-pk"]
        indexes = [models.Index(fields=["account", "-timestamp"], name="audit_account_recent"),
                   models.Index(fields=["timestamp"], name="audit_timestamp")]

    def __str__(self) -> str:
        return f"{self.action} {self.name} by {self.actor_name or 'the system'}"


class OrganizationAccessToken(models.Model):
    """An organization access token (Docker Hub's): logs in to the registry as the organization
    (`docker login -u <org> -p <token>`), with exactly its resources and scopes, and never to the Hub API.

    `resources` is a list of {"type": "TYPE_REPO", "path": <"org/name", a glob inside the organization, or
    "*/*/public">, "scopes": ["scope-image-pull", "scope-image-push"]} (checked by accounts/org_tokens.py).
    The token is `dckr_oat_<key_id><secret>`: it is found by its `key_id` and its keyed hash compared in
    constant time; the secret itself is never stored.
    """

    PREFIX = "dckr_oat_"
    KEY_ID_LENGTH = 12

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="access_tokens")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    label = models.CharField(max_length=100)
    description = models.CharField(max_length=255, blank=True)
    resources = models.JSONField(default=list)
    key_id = models.CharField(max_length=KEY_ID_LENGTH, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    token_hint = models.CharField(max_length=16, editable=False, help_text="The last characters, for recognition.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Revoked (deleted through the API or the web): never usable again, no longer listed.
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.label} ({self.organization_id})"

    @staticmethod
    def hash_secret(secret: str) -> str:
        # 256 bits of randomness: a fast keyed hash is the right tool (no brute force).
        return hmac.new(b"wharf-organization-access-token", secret.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def looks_like_token(cls, value: str) -> bool:
        return isinstance(value, str) and value.startswith(cls.PREFIX)

    def is_usable(self, now: datetime | None = None) -> bool:
        if self.revoked_at is not None or not self.is_active:
            return False
        return self.expires_at is None or self.expires_at > (now or timezone.now())
