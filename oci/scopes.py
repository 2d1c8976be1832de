"""Docker token scopes: `type:name:action[,action]` (distribution docs/spec/auth/scope.md).

Names may contain `host:port`, so the type ends at the first ':' and the actions start after the
last one. Names are kept exactly as the client wrote them: the token's `access` claim must echo them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE, ALL})
CATALOG_ACTIONS = frozenset({ALL, "search"})

MAX_SCOPE_LENGTH = 512
_NAME_RE = re.compile(r"[A-Za-z0-9._/:@-]+")


class InvalidScope(ValueError):
    """The scope string does not follow the grammar, or names an unknown type or action."""


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scope(value: str) -> Scope:
    """Parse one scope; raise InvalidScope with the reason when it is not valid."""
    if not isinstance(value, str) or not value:
        raise InvalidScope("empty scope")
    if len(value) > MAX_SCOPE_LENGTH:
        raise InvalidScope(f"scope is longer than {MAX_SCOPE_LENGTH} characters")
    shown = value[:100]
    type_, sep, rest = value.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    if not sep or not sep2 or not type_ or not name:
        raise InvalidScope(f"invalid scope {shown!r}: expected type:name:action[,action]")
    if not _NAME_RE.fullmatch(name):
        raise InvalidScope(f"invalid scope {shown!r}: bad resource name")
    actions = frozenset(actions_text.split(","))
    if type_ == REPOSITORY:
        allowed = REPOSITORY_ACTIONS
    elif type_ == REGISTRY:
        if name != CATALOG:
            raise InvalidScope(f"invalid scope {shown!r}: the only registry resource is {CATALOG!r}")
        allowed = CATALOG_ACTIONS
    else:
        raise InvalidScope(f"invalid scope {shown!r}: unknown resource type {type_[:30]!r}")
    unknown = actions - allowed
    if unknown:
        listed = ", ".join(repr(a[:20]) for a in sorted(unknown))
        raise InvalidScope(f"invalid scope {shown!r}: unknown action {listed} "
                           f"(use {', '.join(sorted(allowed))})")
    return Scope(type=type_, name=name, actions=actions)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse every scope in `values`, each of which may hold several separated by spaces.

    Scopes for the same resource are merged (actions united), in the order first asked.
    """
    merged: dict[tuple[str, str], frozenset[str]] = {}
    for value in values:
        for part in value.split():
            scope = parse_scope(part)
            key = (scope.type, scope.name)
            merged[key] = merged.get(key, frozenset()) | scope.actions
    return [Scope(type=type_, name=name, actions=actions) for (type_, name), actions in merged.items()]
