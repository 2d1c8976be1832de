"""What an actor may do with the repositories a token request names: the token service's grants.

`allowed_repository_actions_many` answers every repository scope of one `/token` request together, so
a request naming several repositories (a push that mounts layers from another one) costs the same few
queries as one naming a single repository. The rule itself is repositories.permissions; mirrors are
registry/mirror/access.py; organization access tokens grant exactly their resources.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db.models import Q

from accounts.models import Namespace
from accounts.org_tokens import OrganizationTokenGrant
from oci.names import InvalidName
from oci.scopes import ALL
from registry.mirror.access import mirror_actions
from registry.mirror.names import is_mirror_namespace, split_name
from repositories.models import Repository, validate_repository_name
from repositories.permissions import DELETE, PULL, PUSH, Actor, may_create_repository, repository_actions_many

REGISTRY_ACTIONS = frozenset({PULL, PUSH, DELETE})
NOTHING: frozenset[str] = frozenset()


def _as_registry_actions(actions: frozenset[str]) -> frozenset[str]:
    granted = actions & REGISTRY_ACTIONS
    return granted | {ALL} if granted == REGISTRY_ACTIONS else granted


def allowed_repository_actions(actor: Actor, name: str) -> frozenset[str]:
    """What `actor` may do with repository `name` as a client wrote it (`ubuntu`, `alice/app`).

    A repository that does not exist gets pull and push only when the actor may create it by a
    push; so a private repository the actor cannot see and a missing one look exactly alike.
    """
    return allowed_repository_actions_many(actor, [name])[name]


def allowed_repository_actions_many(actor: Actor, names: Iterable[str]) -> dict[str, frozenset[str]]:
    """`allowed_repository_actions` for each name, asked of the database together: one query for the
    repositories, at most three for the actor's grants on them (repository_actions_many), and one for
    the namespaces of those that do not exist, however many scopes a token request names."""
    allowed: dict[str, frozenset[str]] = {}
    wanted: dict[tuple[str, str], list[str]] = {}  # (namespace, repository) -> the names as written
    for name in dict.fromkeys(names):
        try:
            namespace_name, repository_name = split_name(name)
        except InvalidName:
            allowed[name] = NOTHING
            continue
        if is_mirror_namespace(namespace_name):  # pull through a mirror, never push (registry/mirror/access.py)
            allowed[name] = mirror_actions(actor, namespace_name)
            continue
        wanted.setdefault((namespace_name, repository_name), []).append(name)
    if not wanted:
        return allowed
    lookup = Q()
    for namespace_name, repository_name in wanted:
        lookup |= Q(namespace__name=namespace_name, name=repository_name)
    found = {(repository.namespace.name, repository.name): repository
             for repository in Repository.objects.select_related("namespace").filter(lookup)}
    if actor.organization_token is not None:
        for key, written in wanted.items():
            granted = _organization_token_actions(actor.organization_token, *key, found.get(key))
            allowed.update(dict.fromkeys(written, granted))
        return allowed
    by_id = repository_actions_many(actor, found.values()) if found else {}
    missing = [key for key in wanted if key not in found]
    namespaces = ({namespace.name: namespace for namespace in
                   Namespace.objects.filter(name__in={namespace_name for namespace_name, _ in missing})}
                  if missing else {})
    for key, written in wanted.items():
        repository = found.get(key)
        if repository is not None:
            granted = _as_registry_actions(by_id[repository.pk])
        else:
            granted = _creatable(actor, namespaces.get(key[0]), key[1])
        allowed.update(dict.fromkeys(written, granted))
    return allowed


def _creatable(actor: Actor, namespace: Namespace | None, repository_name: str) -> frozenset[str]:
    """Pull and push on a repository that does not exist yet, when the actor may create it by a push."""
    if namespace is None or not may_create_repository(actor, namespace):
        return NOTHING
    return _created_by_a_push(repository_name)


def _created_by_a_push(repository_name: str) -> frozenset[str]:
    """Pull and push on a new repository's name, when it is a valid one."""
    try:
        validate_repository_name(repository_name)
    except ValidationError:
        return NOTHING
    return frozenset({PULL, PUSH})


def _organization_token_actions(grant: OrganizationTokenGrant, namespace_name: str, repository_name: str,
                                repository: Repository | None) -> frozenset[str]:
    """Exactly what the token's resources give: pull and push on the organization's repositories its
    paths match, pull on public ones for `*/*/public`. A missing repository of the organization gets
    pull and push when the token may push to its name (the push creates it), like an owner's would."""
    if repository is not None:
        return grant.actions_for(namespace_name, repository_name, is_public=not repository.is_private) & {PULL, PUSH}
    granted = grant.actions_for(namespace_name, repository_name, is_public=False)
    if PUSH not in granted:
        return NOTHING
    namespace = Namespace.objects.filter(name=namespace_name, organization_id=grant.organization_id,
                                         deleted_at=None).first()
    if namespace is None:
        return NOTHING
    return _created_by_a_push(repository_name)
