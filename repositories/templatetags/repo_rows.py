"""Template tags for repository lists: `{% repo_row %}`, `{% repo_badges %}`, `{% star_button %}`
and `{% tag_row %}` (the markup is built in repositories/rows.py)."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from repositories import rows

register = template.Library()


@register.simple_tag
def repo_badges(repository) -> SafeString:
    return rows.badges(repository)


@register.simple_tag(takes_context=True)
def star_button(context, repository, starred, next_url: str = "") -> SafeString:
    return rows.star_button(repository, starred=bool(starred), next_url=next_url or "",
                            csrf_token=str(context.get("csrf_token") or ""))


@register.simple_tag(takes_context=True)
def repo_row(context, repository, show_star: bool = False) -> SafeString:
    """One repository in a list; with `show_star`, a star button for a signed-in visitor (the ids
    they starred in the context's `starred`, the page to come back to from the request)."""
    star = None
    user = context.get("user")
    if show_star and user is not None and user.is_authenticated:
        request = context.get("request")
        star = rows.star_button(repository, starred=repository.pk in (context.get("starred") or ()),
                                next_url=request.get_full_path() if request is not None else "",
                                csrf_token=str(context.get("csrf_token") or ""))
    return rows.repository_row(repository, star=star)


@register.simple_tag
def tag_row(repository, tag, trusted=None, can_delete: bool = False) -> SafeString:
    """One row of the Tags tab; `trusted`: {digest: build} from `{% trusted_builds %}`."""
    build = trusted.get(tag.manifest.digest) if trusted else None
    badge = ""
    if build is not None:
        badge = render_to_string("builds/includes/trusted_badge.html",
                                 {"build": build, "repository": repository, "compact": True}).strip()
    return rows.tag_row(repository, tag, trusted_badge=badge, can_delete=bool(can_delete))
