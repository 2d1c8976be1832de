"""A namespace's storage and quota, for those who may see it.

`{% namespace_storage_for namespace as storage %}`: the account itself, an organization's members and
staff see it; anyone else gets None (public visitors are not shown what an account stores).
`{% storage_warnings as warnings %}`: the dashboard's warnings, the signed-in user's namespaces past 80%.
"""

from __future__ import annotations

from django import template
from django.db.models import Q

from accounts.models import Namespace, Team
from registry.services.quotas import Storage, effective_quota, human_bytes, namespace_storage, past_warning

register = template.Library()


def may_see_storage(user, namespace: Namespace) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or (namespace.user_id is not None and namespace.user_id == user.pk):
        return True
    return namespace.organization is not None and namespace.organization.is_member(user)


@register.simple_tag(takes_context=True)
def namespace_storage_for(context, namespace: Namespace) -> Storage | None:
    request = context.get("request")
    if request is None or namespace is None or not may_see_storage(request.user, namespace):
        return None
    return namespace_storage(namespace=namespace)


@register.filter
def bytes_human(value) -> str:
    """1288490188 → 1.2 GiB (the units the quota messages use)."""
    try:
        return human_bytes(int(value))
    except (TypeError, ValueError):
        return ""


@register.simple_tag(takes_context=True)
def storage_warnings(context) -> list[Storage]:
    """The namespaces the signed-in user owns (their own, their organizations') past 80% of their quota."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return []
    # The owned organizations first: an OR across the joins to teams and memberships read every namespace.
    owned_organizations = list(Team.objects.filter(name=Team.OWNERS, memberships__user=user)
                               .values_list("organization_id", flat=True))
    owned = Namespace.objects.filter(deleted_at=None).filter(
        Q(user=user) | Q(organization_id__in=owned_organizations)).order_by("name")
    found = []
    for namespace in owned:
        if effective_quota(namespace):
            storage = namespace_storage(namespace=namespace)
            if past_warning(storage.usage_bytes, storage.quota_bytes):
                found.append(storage)
    return found
