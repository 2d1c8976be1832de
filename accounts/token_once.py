"""A new token's value, shown once on the page a creation redirects to (post/redirect/get).

The form's POST creates the token and keeps its value in the session (server side: Django's database
sessions); the GET it redirects to takes it out again, so the value is in one response only and a reload
neither shows it again nor creates a second token. A value nobody came back for within ten minutes is
dropped. `kind` keeps one page's token off another's (an organization's page shows only its own)."""

from __future__ import annotations

import time

from django.db.models import Model, QuerySet
from django.http import HttpRequest

SESSION_KEY = "wharf-new-token"
KEEP_SECONDS = 600


def keep(request: HttpRequest, *, kind: str, token: Model, secret: str) -> None:
    request.session[SESSION_KEY] = {"kind": kind, "pk": token.pk, "secret": secret, "at": time.time()}


def take(request: HttpRequest, *, kind: str, tokens: QuerySet) -> tuple[Model, str] | None:
    """The token kept for this page (among `tokens`, the ones it lists) and its value, once; else None."""
    kept = request.session.get(SESSION_KEY)
    if not isinstance(kept, dict) or kept.get("kind") != kind:
        return None
    del request.session[SESSION_KEY]
    if time.time() - float(kept.get("at", 0)) > KEEP_SECONDS:
        return None
    token = tokens.filter(pk=kept.get("pk")).first()
    return (token, str(kept["secret"])) if token is not None else None
