"""The one permission rule: what may this user (or token) do with this repository?

Used by the registry's token service, the web pages and the Hub API alike.

- the namespace's user: everything;
- organization repositories: the owners team has everything; other teams what their
  permission on the repository gives (read → pull; write → pull, push; admin → everything);
- personal repositories: collaborators pull and push;
- `library/` (official images): staff have everything;
- anyone, signed in or not, pulls a public repository;
- a personal access token caps the result by its scope;
- an organization access token grants exactly its resources (accounts/org_tokens.py), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import AccessToken, Membership, Namespace, Team
from accounts.org_tokens import OrganizationTokenGrant
from repositories.models import Collaborator, Repository, TeamPermission

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ADMIN = "admin"
ALL_ACTIONS: frozenset[str] = frozenset({PULL, PUSH, DELETE, ADMIN})
NO_ACTIONS: frozenset[str] = frozenset()
PULL_ONLY: frozenset[str] = frozenset({PULL})

LEVEL_ACTIONS: dict[str, frozenset[str]] = {
    TeamPermission.Level.READ: frozenset({PULL}),
    TeamPermission.Level.WRITE: frozenset({PULL, PUSH}),
    TeamPermission.Level.ADMIN: ALL_ACTIONS,
}

SCOPE_CAPS: dict[str, frozenset[str]] = {
    AccessToken.Scope.PUBLIC_READ: frozenset({PULL}),
    AccessToken.Scope.READ: frozenset({PULL}),
    AccessToken.Scope.WRITE: frozenset({PULL, PUSH}),
    AccessToken.Scope.ADMIN: ALL_ACTIONS,
}


@dataclass(frozen=True)
class Actor:
    """Who is asking: a user (or nobody), and the scope of the token they used, if any; or an
    organization access token (then `user` is None, and the registry asks the grant, never the rule)."""

    user: object | None = None
    token_scope: str | None = None
    token_repository_id: int | None = None  # a token limited to one repository pulls, at most, elsewhere
    organization_token: OrganizationTokenGrant | None = None

    @classmethod
    def for_user(cls, user, token: AccessToken | None = None) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
            return cls()
        if token is None:
            return cls(user=user)
        return cls(user=user, token_scope=token.scope, token_repository_id=token.repository_id)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def sees_public_only(self) -> bool:
        """Anonymous, or a token that reads public repositories only: no private one is visible."""
        return self.user is None or self.token_scope == AccessToken.Scope.PUBLIC_READ

    @property
    def username(self) -> str:
        if self.user is None and self.organization_token is not None:
            return self.organization_token.organization_name
        return self.user.username if self.user is not None else ""

    def cap(self, actions: frozenset[str], *, is_private: bool, repository_id: int | None = None) -> frozenset[str]:
        if self.token_scope is None:
            return actions
        if self.token_scope == AccessToken.Scope.PUBLIC_READ and is_private:
            return NO_ACTIONS
        capped = actions & SCOPE_CAPS.get(self.token_scope, NO_ACTIONS)
        if self.token_repository_id is not None and repository_id != self.token_repository_id:
            capped &= PULL_ONLY
        return capped


@dataclass(frozen=True)
class _Grants:
    """What the rule needs from the database about one user and a set of repositories."""

    owned_organization_ids: frozenset[int] = frozenset()  # organizations whose owners team has the user
    collaborations: frozenset[int] = frozenset()  # ids of repositories the user collaborates on
    team_levels: dict[int, frozenset[str]] = field(default_factory=dict)  # repository id → their teams' levels


def _personal(namespace: Namespace) -> bool:
    return namespace.kind != Namespace.Kind.LIBRARY and namespace.user_id is not None


def _organization(namespace: Namespace) -> bool:
    return (namespace.kind != Namespace.Kind.LIBRARY and namespace.user_id is None
            and namespace.organization_id is not None)


def _grants(user, repositories: list[Repository]) -> _Grants:
    """At most three queries whatever the number of repositories; none that the rule won't need
    (a stranger to the organizations makes one: their memberships there, none)."""
    organization_ids = {r.namespace.organization_id for r in repositories if _organization(r.namespace)}
    owned: frozenset[int] = frozenset()
    member_teams: dict[int, int] = {}  # the user's other teams in those organizations → organization
    if organization_ids:
        memberships = Membership.objects.filter(user=user, team__organization_id__in=organization_ids)
        rows = list(memberships.values_list("team_id", "team__organization_id", "team__name"))
        owned = frozenset(org for _, org, name in rows if name == Team.OWNERS)
        member_teams = {team: org for team, org, name in rows if name != Team.OWNERS and org not in owned}
    others = [r.pk for r in repositories if _personal(r.namespace) and r.namespace.user_id != user.pk]
    collaborations: frozenset[int] = frozenset()
    if others:
        collaborations = frozenset(Collaborator.objects.filter(user=user, repository_id__in=others)
                                   .values_list("repository_id", flat=True))
    member_organizations = set(member_teams.values())
    by_teams = [r.pk for r in repositories
                if _organization(r.namespace) and r.namespace.organization_id in member_organizations]
    levels: dict[int, set[str]] = {}
    if by_teams:
        rows = TeamPermission.objects.filter(repository_id__in=by_teams, team_id__in=member_teams)
        for repository_id, level in rows.values_list("repository_id", "permission"):
            levels.setdefault(repository_id, set()).add(level)
    return _Grants(owned, collaborations, {pk: frozenset(found) for pk, found in levels.items()})


def _uncapped_actions(actor: Actor, repository: Repository, grants: _Grants) -> frozenset[str]:
    public = NO_ACTIONS if repository.is_private else frozenset({PULL})
    user = actor.user
    if user is None:
        return public
    namespace: Namespace = repository.namespace
    if namespace.kind == Namespace.Kind.LIBRARY:
        return ALL_ACTIONS if user.is_staff else public
    if _personal(namespace):
        if namespace.user_id == user.pk:
            return ALL_ACTIONS
        if repository.pk in grants.collaborations:
            return public | {PULL, PUSH}
        return public
    if _organization(namespace):
        if namespace.organization_id in grants.owned_organization_ids:
            return ALL_ACTIONS
        granted = set(public)
        for level in grants.team_levels.get(repository.pk, NO_ACTIONS):
            granted |= LEVEL_ACTIONS.get(level, NO_ACTIONS)
        return frozenset(granted)
    return public  # a tombstoned namespace: nobody owns it any more


def repository_actions_many(actor: Actor, repositories) -> dict[int, frozenset[str]]:
    """`repository_actions` for each repository (by id), in at most three queries for them all.

    For a page of a list: the repositories should come with their namespace (select_related).
    """
    repositories = list(repositories)
    grants = _grants(actor.user, repositories) if actor.user is not None else _Grants()
    return {
        repository.pk: actor.cap(_uncapped_actions(actor, repository, grants), is_private=repository.is_private,
                                 repository_id=repository.pk)
        for repository in repositories
    }


def repository_actions(actor: Actor, repository: Repository) -> frozenset[str]:
    """Everything `actor` may do with `repository`: a subset of pull, push, delete, admin."""
    return repository_actions_many(actor, [repository])[repository.pk]


def may_create_repository(actor: Actor, namespace: Namespace) -> bool:
    """May `actor` create a repository in `namespace` (by a push or from the web)?"""
    user = actor.user
    if user is None or namespace.is_tombstone:
        return False
    if actor.token_scope is not None and PUSH not in SCOPE_CAPS.get(actor.token_scope, NO_ACTIONS):
        return False
    if actor.token_repository_id is not None:
        return False  # a token for one repository creates none
    if namespace.kind == Namespace.Kind.LIBRARY:
        return bool(user.is_staff)
    if namespace.user_id is not None:
        return namespace.user_id == user.pk
    if namespace.organization_id is not None:
        return Membership.objects.filter(
            team__organization_id=namespace.organization_id, user=user, team__can_create_repositories=True
        ).exists()
    return False


def may_admin_organization(user, organization) -> bool:
    return organization.is_owner(user)
