"""Who is calling the registry and what they may do with a repository name.

A request carries a Bearer token from /token (the normal path), Basic credentials (accepted
directly, as some OCI libraries use them), or nothing (then the client is challenged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.http import HttpRequest

from accounts.models import User
from accounts.org_tokens import OrganizationTokenGrant
from registry.errors import TooManyRequests, Unauthorized
from repositories.permissions import Actor


def challenge(scope: str | None = None, error: str | None = None) -> str:
    parts = [f'realm="{settings.HUB_PUBLIC_URL}/token"', f'service="{settings.REGISTRY_SERVICE}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


@dataclass
class RegistryAccess:
    """The caller of one registry request."""

    username: str = ""
    claims: object | None = None  # RegistryClaims for a Bearer token
    actor: Actor | None = None  # for Basic credentials
    _cache: dict = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return bool(self.username)

    @cached_property
    def user(self) -> User | None:
        if self.actor is not None:
            return self.actor.user
        if not self.username:
            return None
        return User.objects.filter(username=self.username, is_active=True).first()

    def actions(self, namespace: str, name: str) -> frozenset[str]:
        key = (namespace, name)
        if key not in self._cache:
            if self.claims is not None:
                self._cache[key] = self.claims.actions_for(namespace, name)
            else:
                from registry.tokens import allowed_repository_actions

                self._cache[key] = allowed_repository_actions(self.actor or Actor(), f"{namespace}/{name}")
        return self._cache[key]

    def may_list_catalog(self) -> bool:
        if self.claims is not None:
            return bool(self.claims.has_registry_catalog)
        return True

    def visibility_actor(self) -> Actor:
        """The Actor whose visibility rule filters lists (catalog)."""
        if self.actor is not None:
            return self.actor
        return Actor.for_user(self.user)


def authenticate_request(request: HttpRequest, *, scope: str | None = None) -> RegistryAccess:
    """Identify the caller or raise Unauthorized with the challenge that tells the client what to do."""
    from accounts.credentials import (
        AccessTokenRequired,
        TooManyAttempts,
        authenticate_registry_credentials,
        client_address,
        parse_basic_authorization,
    )
    from registry.tokens import verify_registry_token

    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        claims = verify_registry_token(credentials.strip())
        if claims is None:
            headers = {"WWW-Authenticate": challenge(scope, "invalid_token")}
            raise Unauthorized("invalid or expired token", headers=headers)
        return RegistryAccess(username=claims.subject or "", claims=claims)
    if scheme == "basic":
        parsed = parse_basic_authorization(header)
        if parsed is not None:
            username, password = parsed
            try:
                result = authenticate_registry_credentials(username, password, remote_addr=client_address(request))
            except TooManyAttempts as exc:
                raise TooManyRequests(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
            except AccessTokenRequired as exc:
                raise Unauthorized(str(exc), headers={"WWW-Authenticate": challenge(scope)}) from None
            if result is not None and result.organization_token is not None:
                actor = Actor(organization_token=OrganizationTokenGrant.of(result.organization_token))
                return RegistryAccess(username=actor.username, actor=actor)
            if result is not None:
                actor = Actor.for_user(result.user, result.token)
                return RegistryAccess(username=result.user.username, actor=actor)
        raise Unauthorized("incorrect username or password", headers={"WWW-Authenticate": challenge(scope)})
    raise Unauthorized(headers={"WWW-Authenticate": challenge(scope)})
