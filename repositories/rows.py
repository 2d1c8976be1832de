"""Repository rows, badges and star buttons as HTML, built in Python.

Lists of repositories (search, dashboard, profiles) show up to 25 of these per page, and Django's
template engine spends about 20 µs per node: a row with its star button was most of a search page's
time. These functions build the same markup with `format_html` (every value escaped); the template
tags in `templatetags/repo_rows.py` are how templates use them.
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from repositories.templatetags.repo_format import compact, reltime, repo_url


def badges(repository) -> SafeString:
    parts = []
    if repository.is_official:
        parts.append('<span class="badge badge-official" title="Official image, maintained by the site\'s staff">'
                     'Official</span>')
    if repository.is_private:
        parts.append(' <span class="badge badge-private">Private</span>')
    if repository.is_automated:
        parts.append(' <span class="badge badge-success">Automated</span>')
    return mark_safe("".join(parts))  # noqa: S308 - fixed markup only


def star_button(repository, *, starred: bool, next_url: str = "", csrf_token: str = "") -> SafeString:
    """A star toggle: a plain POST form, upgraded by htmx to swap itself."""
    url = repo_url(repository, "star")
    stars = repository.star_count
    return format_html(
        '<form class="star-form" method="post" action="{url}" hx-post="{url}" hx-swap="outerHTML">\n'
        '  <input type="hidden" name="csrfmiddlewaretoken" value="{csrf}">\n'
        '  <input type="hidden" name="action" value="{action}">\n'
        '  {next}'
        '<button class="btn btn-sm star-button{cls}" type="submit" aria-pressed="{pressed}" title="{verb} {name}">\n'
        '    <span aria-hidden="true">{icon}</span>\n'
        '    <span>{label}</span>\n'
        '    <span class="star-count" aria-label="{stars} stars">{compact}</span>\n'
        '  </button>\n'
        '</form>',
        url=url, csrf=csrf_token, action="unstar" if starred else "star",
        next=format_html('<input type="hidden" name="next" value="{}">\n  ', next_url) if next_url else "",
        cls=" is-starred" if starred else "", pressed="true" if starred else "false",
        verb="Unstar" if starred else "Star", name=repository.display_name, icon="★" if starred else "☆",
        label="Starred" if starred else "Star", stars=str(int(stars)), compact=compact(stars),
    )


def repository_row(repository, *, star: SafeString | None = None) -> SafeString:
    """One repository in a list (`star`: its star button, for people who may star)."""
    if repository.is_official:
        name = format_html("{}", repository.name)
    else:
        name = format_html('<span class="muted">{} /</span> {}', repository.namespace.name, repository.name)
    if repository.description:
        description = format_html('<p class="repo-row-desc">{}</p>', repository.description)
    else:
        description = mark_safe('<p class="repo-row-desc muted">No description</p>')
    if repository.last_pushed_at:
        updated = format_html("Updated {}", reltime(repository.last_pushed_at))
    else:
        updated = mark_safe('<span class="muted">Never pushed</span>')
    pulls = repository.pull_count
    return format_html(
        '<li class="repo-row">\n'
        '  <div class="repo-row-main">\n'
        '    <h3 class="repo-row-name"><a href="{url}">{name}</a> {badges}</h3>\n'
        '    {description}\n'
        '  </div>\n'
        '  <ul class="repo-row-stats" aria-label="Statistics">\n'
        '    <li title="{stars} stars"><span aria-hidden="true">★</span> {stars_compact}'
        '<span class="visually-hidden"> stars</span></li>\n'
        '    <li title="{pulls} pulls">{pulls_compact} pull{plural}</li>\n'
        '    <li>{updated}</li>\n'
        '  </ul>\n'
        '  {action}</li>\n',
        url=repo_url(repository), name=name, badges=badges(repository), description=description,
        stars=str(int(repository.star_count)), stars_compact=compact(repository.star_count),
        pulls=str(int(pulls)), pulls_compact=compact(pulls), plural="" if pulls == 1 else "s", updated=updated,
        action=format_html('<div class="repo-row-action">{}</div>\n', star) if star is not None else "",
    )
