"""Namespace name rules shared by users and organizations (Docker Hub's rules)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

NAMESPACE_RE = re.compile(r"^[a-z0-9]{4,30}$")

# `library` holds official images; the rest are words the site's own URLs use.
RESERVED_NAMESPACES = frozenset(
    {
        "library", "official", "v1", "v2", "api", "admin", "accounts", "account", "static", "media",
        "token", "search", "explore", "u", "r", "_", "repositories", "repository", "namespaces",
        "users", "user", "orgs", "org", "organizations", "auth", "access-tokens", "healthz", "readyz",
        "settings", "login", "logout", "signup", "register", "dashboard", "help", "about", "docs",
        "root", "staff", "support", "security", "hub", "wharf", "docker", "registry", "builds",
        "build", "webhooks", "webhook", "hooks", "stars", "starred", "teams", "team", "members",
        "tags", "manifests", "blobs", "uploads", "catalog", "_catalog", "referrers", "null", "none",
        "undefined", "system", "public", "private", "new", "create", "edit", "delete", "www",
        "mail", "email", "billing", "status", "privacy", "terms",
    }
)


def validate_namespace_name(value: str) -> None:
    """Raise ValidationError with a message a person can act on."""
    if value != value.lower():
        raise ValidationError("Use lowercase letters only.", code="uppercase")
    if not 4 <= len(value) <= 30:
        raise ValidationError("Must be between 4 and 30 characters long.", code="length")
    if not NAMESPACE_RE.match(value):
        raise ValidationError("Use only lowercase letters (a–z) and digits (0–9).", code="characters")
    if value in RESERVED_NAMESPACES or value in _mirror_prefixes():
        raise ValidationError(f"“{value}” is reserved. Please choose another name.", code="reserved")


def _mirror_prefixes() -> dict:
    """The pull-through cache's prefixes (HUB_MIRRORS): names no user or organization may take."""
    from django.conf import settings

    return getattr(settings, "HUB_MIRRORS", {})
