"""Organization access tokens (Docker Hub's): what they grant, and the one place each is created,
changed, revoked and checked.

A token logs in to the registry as its organization (`docker login -u <org> -p dckr_oat_…`, at `/token`
and with Basic credentials on `/v2/`) and grants exactly its resources: pull and/or push on the
organization's repositories its paths name (`acme/app`, or a glob inside the organization such as
`acme/*` or `acme/web-?`), and pull on every public repository for `*/*/public`. It never signs in to
the Hub API (accounts.credentials refuses it there). Revoking, deactivating or deleting one announces
a revocation (accounts.revocation), so registry tokens it minted stop within seconds.

Globs are matched here, without regular expressions: `*` is any run of characters and `?` one
character, in time proportional to the lengths (names and paths are at most 255 characters).

Audit hooks: `org_access_token_create`, `org_access_token_update` and `org_access_token_revoke` are
the only writers; each runs in one transaction.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import audit
from accounts.models import Organization, OrganizationAccessToken, User
from accounts.revocation import credentials_revoked
from oci.names import COMPONENT_RE

TYPE_REPO = "TYPE_REPO"
SCOPE_PULL = "scope-image-pull"
SCOPE_PUSH = "scope-image-push"
SCOPES = (SCOPE_PULL, SCOPE_PUSH)
PUBLIC_PATH = "*/*/public"
MAX_RESOURCES = 50
MAX_PATH_LENGTH = 255
LAST_USED_PRECISION_SECONDS = 60
_PATTERN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-*?")
# Registry actions (repositories.permissions' names, kept as plain strings in this layer).
_SCOPE_ACTIONS = {SCOPE_PULL: "pull", SCOPE_PUSH: "push"}


# --- Resources ----------------------------------------------------------------------------------


def glob_match(pattern: str, name: str) -> bool:
    """fnmatch's `*` and `?` (no character classes), matched without regular expressions: the classic
    two-pointer walk that returns to the last `*`, O(len(pattern) × len(name)) at worst."""
    p = n = 0
    star, star_n = -1, 0
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, star_n = p, n
            p += 1
        elif star >= 0:
            star_n += 1
            p, n = star + 1, star_n
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _clean_path(organization: Organization, path: object) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ValidationError("Each resource needs a `path`: a repository of the organization "
                              f"({organization.name}/<name>), a glob inside it ({organization.name}/*), "
                              f"or {PUBLIC_PATH}.")
    path = path.strip()
    if path == PUBLIC_PATH:
        return path
    namespace, slash, rest = path.partition("/")
    if not slash or namespace != organization.name:
        raise ValidationError(f"Path {path[:100]!r} is outside the organization: paths name repositories of "
                              f"{organization.name} ({organization.name}/<name> or a glob such as "
                              f"{organization.name}/*), or {PUBLIC_PATH} for every public repository.")
    if not rest or len(path) > MAX_PATH_LENGTH or not set(rest) <= _PATTERN_CHARACTERS:
        raise ValidationError(f"Path {path[:100]!r} is not a repository name or glob: after "
                              f"{organization.name}/ use lowercase letters, digits, '.', '_', '-', and "
                              "'*' (any characters) or '?' (one character).")
    if "*" not in rest and "?" not in rest and not COMPONENT_RE.fullmatch(rest):
        raise ValidationError(f"Path {path[:100]!r} is not a valid repository name.")
    return path


def _clean_scopes(path: str, scopes: object) -> list[str]:
    if not isinstance(scopes, list) or not scopes or not all(isinstance(scope, str) for scope in scopes):
        raise ValidationError(f"Resource {path!r} needs `scopes`: a list of {SCOPE_PULL} and {SCOPE_PUSH}.")
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scope {unknown[0][:60]!r}: the scopes are {SCOPE_PULL} and {SCOPE_PUSH}.")
    cleaned = [scope for scope in SCOPES if scope in scopes]
    if SCOPE_PUSH in cleaned and SCOPE_PULL not in cleaned:
        raise ValidationError(f"Resource {path!r}: {SCOPE_PUSH} needs {SCOPE_PULL} too (clients read what they push).")
    if path == PUBLIC_PATH and cleaned != [SCOPE_PULL]:
        raise ValidationError(f"{PUBLIC_PATH} grants {SCOPE_PULL} only.")
    return cleaned


def clean_resources(organization: Organization, resources: object) -> list[dict]:
    """The resources as stored, or ValidationError saying what is wrong with the first bad one."""
    if not isinstance(resources, list) or not resources:
        raise ValidationError("`resources` must be a non-empty list, such as "
                              f'[{{"type": "{TYPE_REPO}", "path": "{organization.name}/*", '
                              f'"scopes": ["{SCOPE_PULL}"]}}].')
    if len(resources) > MAX_RESOURCES:
        raise ValidationError(f"At most {MAX_RESOURCES} resources.")
    cleaned: list[dict] = []
    for resource in resources:
        if not isinstance(resource, dict):
            raise ValidationError("Each resource is an object with `type`, `path` and `scopes`.")
        extra = set(resource) - {"type", "path", "scopes"}
        if extra:
            raise ValidationError(f"Unknown resource field {sorted(extra)[0][:40]!r}: use type, path and scopes.")
        if resource.get("type") != TYPE_REPO:
            raise ValidationError(f"Unknown resource type {str(resource.get('type'))[:40]!r}: only {TYPE_REPO}.")
        path = _clean_path(organization, resource.get("path"))
        scopes = _clean_scopes(path, resource.get("scopes"))
        for existing in cleaned:
            if existing["path"] == path:
                raise ValidationError(f"Path {path!r} is given twice.")
        cleaned.append({"type": TYPE_REPO, "path": path, "scopes": scopes})
    return cleaned


@dataclass(frozen=True)
class OrganizationTokenGrant:
    """What one organization access token may do in the registry (repositories.permissions.Actor holds it)."""

    token_id: int
    organization_id: int
    organization_name: str
    resources: tuple[tuple[str, frozenset[str]], ...]  # (path, registry actions)

    @classmethod
    def of(cls, token: OrganizationAccessToken) -> OrganizationTokenGrant:
        resources = tuple(
            (resource["path"], frozenset(_SCOPE_ACTIONS[s] for s in resource["scopes"] if s in _SCOPE_ACTIONS))
            for resource in token.resources if isinstance(resource, dict) and resource.get("type") == TYPE_REPO
        )
        return cls(token_id=token.pk, organization_id=token.organization_id,
                   organization_name=token.organization.name, resources=resources)

    def actions_for(self, namespace: str, name: str, *, is_public: bool) -> frozenset[str]:
        """The registry actions on the repository `namespace/name` (`is_public`: it exists and is public)."""
        granted: set[str] = set()
        for path, actions in self.resources:
            if path == PUBLIC_PATH:
                if is_public:
                    granted |= actions & {"pull"}
            elif namespace == self.organization_name and glob_match(path, f"{namespace}/{name}"):
                granted |= actions
        return frozenset(granted)


# --- Creating, changing, revoking, checking -------------------------------------------------------


def _new_token() -> tuple[str, str]:
    """(key id, whole token). The key id is public (it finds the row); the rest is 256 random bits."""
    key_id = secrets.token_hex(OrganizationAccessToken.KEY_ID_LENGTH // 2)
    return key_id, f"{OrganizationAccessToken.PREFIX}{key_id}{secrets.token_urlsafe(32)}"


def _clean_label(label: object) -> str:
    label = label.strip() if isinstance(label, str) else ""
    if not label:
        raise ValidationError("Give the token a label so you can recognise it later.", code="label")
    if len(label) > 100:
        raise ValidationError("Labels are at most 100 characters.", code="label")
    return label


def _clean_description(description: object) -> str:
    description = description.strip() if isinstance(description, str) else ""
    if len(description) > 255:
        raise ValidationError("Descriptions are at most 255 characters.", code="description")
    return description


@transaction.atomic
def org_access_token_create(*, organization: Organization, created_by: User | None, label: str,
                            resources: object, description: str = "", expires_at: datetime | None = None
                            ) -> tuple[OrganizationAccessToken, str]:
    """Create a token; returns it with its value, which is never stored and shown only once.
    The caller has checked that `created_by` owns the organization. ValidationError's `code` names
    the field at fault (label, description, resources, expires_at)."""
    label = _clean_label(label)
    description = _clean_description(description)
    try:
        cleaned = clean_resources(organization, resources)
    except ValidationError as error:
        raise ValidationError(error.messages[0], code="resources") from None
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date must be in the future.", code="expires_at")
    key_id, secret = _new_token()
    token = OrganizationAccessToken.objects.create(
        organization=organization, created_by=created_by, label=label, description=description,
        resources=cleaned, expires_at=expires_at, key_id=key_id,
        token_hash=OrganizationAccessToken.hash_secret(secret), token_hint=secret[-4:],
    )
    audit.record("org.access_token.create", account=audit.organization_account(organization), name=label,
                 actor=created_by, data={"resources": cleaned,
                                         "expires_at": expires_at.isoformat() if expires_at else None})
    return token, secret


@transaction.atomic
def org_access_token_update(*, token: OrganizationAccessToken, label: str | None = None,
                            description: str | None = None, is_active: bool | None = None
                            ) -> OrganizationAccessToken:
    """Change a token's label, description or is_active (None leaves a value as is). Deactivating it
    ends the registry tokens it minted at once, as revoking does; it can be activated again."""
    fields = []
    if label is not None:
        token.label = _clean_label(label)
        fields.append("label")
    if description is not None:
        token.description = _clean_description(description)
        fields.append("description")
    deactivated = is_active is False and token.is_active
    if is_active is not None:
        token.is_active = bool(is_active)
        fields.append("is_active")
    if fields:
        token.save(update_fields=fields)
        audit.record("org.access_token.update", account=audit.organization_account(token.organization),
                     name=token.label, data={"is_active": token.is_active, "fields": fields})
    if deactivated:
        credentials_revoked()
    return token


@transaction.atomic
def org_access_token_revoke(*, token: OrganizationAccessToken) -> None:
    """Revoke a token for good (the API's DELETE): it stops working at once and is no longer listed."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.is_active = False
        token.save(update_fields=["revoked_at", "is_active"])
        audit.record("org.access_token.revoke", account=audit.organization_account(token.organization),
                     name=token.label)
    credentials_revoked()


def organization_access_tokens(*, organization: Organization) -> QuerySet[OrganizationAccessToken]:
    """The organization's tokens that were not revoked, newest first."""
    return (OrganizationAccessToken.objects.filter(organization=organization, revoked_at=None)
            .order_by("-created_at", "-pk"))


def org_access_token_authenticate(*, username: str, secret: str) -> OrganizationAccessToken | None:
    """The usable token with this value whose organization is `username` (any case), or None.

    Found by its key id, then its keyed hash compared in constant time. Marks it used (at most once a
    minute, one UPDATE)."""
    prefix = OrganizationAccessToken.PREFIX
    key_length = OrganizationAccessToken.KEY_ID_LENGTH
    if not OrganizationAccessToken.looks_like_token(secret) or len(secret) <= len(prefix) + key_length:
        return None
    key_id = secret[len(prefix):len(prefix) + key_length]
    token = OrganizationAccessToken.objects.select_related("organization").filter(key_id=key_id).first()
    if token is None or not hmac.compare_digest(token.token_hash, OrganizationAccessToken.hash_secret(secret)):
        return None
    if not token.is_usable() or username.strip().lower() != token.organization.name:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_PRECISION_SECONDS:
        OrganizationAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def organization_token_stands(token_id: int) -> bool:
    """One query: the token is neither revoked, deactivated nor expired (registry.tokens' revocation check)."""
    token = OrganizationAccessToken.objects.filter(pk=token_id).only("revoked_at", "is_active", "expires_at").first()
    return token is not None and token.is_usable()
