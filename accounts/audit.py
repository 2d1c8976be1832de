"""The audit log: who changed what, when and from where (model: AuditEvent).

Services call `record()` in the transaction of the change they make, so a change and its event are
committed or rolled back together. Who acted and from which address come from the request being
served (`audit_context`, set by hub.middleware.AuditContextMiddleware and by the registry's views),
unless the caller names the actor. An event belongs to one account's log: a repository's, team's or
organization's namespace, or, for what concerns a person (sign-ins, their access tokens), their own.
Addresses are shown in an account's own log only.

Never recorded: secret values (tokens, webhook and build secrets) and the credentials part of a URL;
callers pass only names and settings, and `record()` drops any key that names a secret.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from accounts.models import AuditEvent, Namespace
from accounts.throttles import client_address

# action → (group, description): the catalogue `GET /v2/auditlogs/<account>/actions` answers.
ACTIONS: dict[str, tuple[str, str]] = {
    "repo.create": ("repo", "Repository created"),
    "repo.delete": ("repo", "Repository deleted"),
    "repo.change_privacy": ("repo", "Repository visibility changed"),
    "repo.update": ("repo", "Repository descriptions changed"),
    "repo.immutable_tags": ("repo", "Tag immutability changed"),
    "repo.retention": ("repo", "Retention policy changed"),
    "repo.tag.push": ("repo", "Tag pushed"),
    "repo.tag.delete": ("repo", "Tag deleted"),
    "repo.collaborator.add": ("repo", "Collaborator added"),
    "repo.collaborator.remove": ("repo", "Collaborator removed"),
    "repo.team_permission.set": ("repo", "Team access granted"),
    "repo.team_permission.remove": ("repo", "Team access removed"),
    "org.create": ("org", "Organization created"),
    "org.retention": ("org", "Organization retention policy changed"),
    "org.team.create": ("org", "Team created"),
    "org.team.delete": ("org", "Team deleted"),
    "org.team.update": ("org", "Team changed"),
    "org.member.add": ("org", "Member added to a team"),
    "org.member.remove": ("org", "Member removed from a team"),
    "org.member.leave": ("org", "Member left the organization"),
    "org.access_token.create": ("org", "Organization access token created"),
    "org.access_token.update": ("org", "Organization access token changed"),
    "org.access_token.revoke": ("org", "Organization access token revoked"),
    "namespace.pull_limit": ("plan", "Pull limit changed by staff"),
    "namespace.storage_quota": ("plan", "Storage quota changed by staff"),
    "access_token.create": ("account", "Access token created"),
    "access_token.revoke": ("account", "Access token revoked"),
    "webhook.create": ("repo", "Webhook created"),
    "webhook.update": ("repo", "Webhook changed"),
    "webhook.delete": ("repo", "Webhook deleted"),
    "build.source.link": ("repo", "Build source linked"),
    "build.source.unlink": ("repo", "Build source unlinked"),
    "build.source.rotate_token": ("repo", "Build trigger token replaced"),
    "build.rule.create": ("repo", "Build rule added"),
    "build.rule.update": ("repo", "Build rule changed"),
    "build.rule.delete": ("repo", "Build rule removed"),
    "account.login": ("account", "Signed in"),
    "account.login_failed": ("account", "Failed sign-in"),
    "account.registry_login": ("account", "Registry login with the password"),
    "account.sso_link": ("account", "Single sign-on identity linked"),
    "account.sso_unlink": ("account", "Single sign-on identity unlinked"),
    "account.sso_refused": ("account", "Single sign-on refused"),
    "account.email_released": ("account", "Unconfirmed email address removed"),
}
GROUP_LABELS = {"repo": "Repository", "org": "Organization", "account": "Account", "plan": "Plan"}
ACCOUNT_LEVEL = {"account.login", "account.login_failed", "account.registry_login", "account.sso_link",
                 "account.sso_unlink", "account.sso_refused", "account.email_released"}
SECRET_WORDS = ("secret", "token", "password", "key")


@dataclass(frozen=True)
class AuditContext:
    request: Any = None  # the HttpRequest being served: its user once authenticated (DRF sets it too)
    address: str = ""  # given outright, or read from `request` when an event needs it

    def client_address(self) -> str:
        if self.address or self.request is None:
            return self.address
        return client_address(self.request)


_context: ContextVar[AuditContext | None] = ContextVar("wharf_audit_context", default=None)


@contextmanager
def audit_context(request=None, address: str = ""):
    token = _context.set(AuditContext(request=request, address=address))
    try:
        yield
    finally:
        _context.reset(token)


def _context_actor():
    context = _context.get()
    user = getattr(context.request, "user", None) if context is not None else None
    return user if getattr(user, "is_authenticated", False) else None


def record(action: str, *, account: Namespace | None, name: str = "", data: dict | None = None,
           actor=None, address: str | None = None) -> AuditEvent | None:
    """Write one event (in the caller's transaction). `actor` defaults to the signed-in user of the
    request being served; `address` to its client address."""
    if account is None:
        return None
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    actor = actor if actor is not None else _context_actor()
    if address is None:
        context = _context.get()
        address = context.client_address() if context is not None else ""
    return AuditEvent.objects.create(
        account=account, action=action, name=name[:300], actor=actor,
        actor_name=getattr(actor, "username", "") or "", address=(address or "")[:64], data=_clean(data or {}))


def _clean(data: dict) -> dict:
    """Drop anything that names a secret; strip credentials from URLs."""
    cleaned = {}
    for key, value in data.items():
        if any(word in key.lower() for word in SECRET_WORDS):
            continue
        if isinstance(value, str) and "://" in value and "@" in value:
            value = _without_credentials(value)
        cleaned[key] = value
    return cleaned


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))


def repository_account(repository) -> Namespace:
    return repository.namespace


def user_account(user) -> Namespace | None:
    return Namespace.objects.filter(user=user).first()


def organization_account(organization) -> Namespace | None:
    return Namespace.objects.filter(organization=organization).first()


# --- Reading --------------------------------------------------------------------------------------


def events_for(account: Namespace, *, action: str = "", name: str = "", actor: str = "",
               since: dt.datetime | None = None, until: dt.datetime | None = None):
    """An account's events, newest first, filtered as Docker Hub's API filters them."""
    events = AuditEvent.objects.filter(account=account)
    if account.organization_id is not None:
        events = events.exclude(action__in=ACCOUNT_LEVEL)
    if action:
        events = events.filter(action=action) if action in ACTIONS else events.filter(action__startswith=action)
    if name:
        events = events.filter(name__icontains=name)
    if actor:
        events = events.filter(actor_name=actor.lower())
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lte=until)
    return events.order_by("-timestamp", "-pk")


def event_data(event: AuditEvent, *, organization: bool) -> dict:
    """Docker Hub's shape of one event (the address only in an account's own log)."""
    body = {"account": event.account.name, "action": event.action,
            "action_description": ACTIONS.get(event.action, ("", event.action))[1], "actor": event.actor_name,
            "data": dict(event.data), "name": event.name,
            "timestamp": event.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if not organization and event.address:
        body["data"]["address"] = event.address
    return body


def may_read(user, account: Namespace) -> bool:
    """Organization owners read their organization's log; each account its own; nobody else."""
    if not getattr(user, "is_authenticated", False):
        return False
    if account.user_id is not None:
        return account.user_id == user.pk
    if account.organization is not None:
        return account.organization.is_owner(user)
    return False


CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text


def prune(*, now: dt.datetime | None = None) -> int:
    """Delete events older than HUB_AUDIT_RETENTION_DAYS; how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.HUB_AUDIT_RETENTION_DAYS)
    deleted, _ = AuditEvent.objects.filter(timestamp__lt=cutoff).delete()
    return deleted
