"""Repository rows, badges and star buttons as HTML, built in Python.

Lists of repositories (search, dashboard, profiles) show up to 25 of these per page, and Django's
template engine spends about 20 µs per node: a row with its star button was most of a search page's
time. These functions build the same markup as f-strings with every value escaped by `_escape`
(Django's `conditional_escape` without its lazy-string wrapper, which cost more than the escaping:
`format_html` was a third of a row); the template tags in `templatetags/repo_rows.py` are how
templates use them.
"""

from __future__ import annotations

import html

from django.utils.safestring import SafeString, mark_safe

from repositories.templatetags.client_commands import clients_for, command_html
from repositories.templatetags.repo_format import compact, digest, filesize, platform_name, reltime, repo_url

# The columns a repository row (and its star button) shows: lists read only these, `.only(*ROW_COLUMNS)`.
ROW_COLUMNS = ("namespace__name", "namespace__kind", "name", "description", "is_private", "is_automated",
               "star_count", "pull_count", "last_pushed_at")


def _escape(value) -> str:
    """`value` as HTML text: safe strings as they are, anything else escaped (quotes too)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


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
    url = _escape(repo_url(repository, "star"))
    stars = repository.star_count
    action, cls, pressed, verb, icon, label = (
        ("unstar", " is-starred", "true", "Unstar", "★", "Starred") if starred
        else ("star", "", "false", "Star", "☆", "Star"))
    next_input = f'<input type="hidden" name="next" value="{_escape(next_url)}">\n  ' if next_url else ""
    return mark_safe(  # noqa: S308 - every value escaped
        f'<form class="star-form" method="post" action="{url}" hx-post="{url}" hx-swap="outerHTML">\n'
        f'  <input type="hidden" name="csrfmiddlewaretoken" value="{_escape(csrf_token)}">\n'
        f'  <input type="hidden" name="action" value="{action}">\n'
        f'  {next_input}'
        f'<button class="btn btn-sm star-button{cls}" type="submit" aria-pressed="{pressed}" '
        f'title="{verb} {_escape(repository.display_name)}">\n'
        f'    <span aria-hidden="true">{icon}</span>\n'
        f'    <span>{label}</span>\n'
        f'    <span class="star-count" aria-label="{int(stars)} stars">{_escape(compact(stars))}</span>\n'
        '  </button>\n'
        '</form>'
    )


def repository_row(repository, *, star: SafeString | None = None) -> SafeString:
    """One repository in a list (`star`: its star button, for people who may star)."""
    if repository.is_official:
        name = _escape(repository.name)
    else:
        name = f'<span class="muted">{_escape(repository.namespace.name)} /</span> {_escape(repository.name)}'
    if repository.description:
        description = f'<p class="repo-row-desc">{_escape(repository.description)}</p>'
    else:
        description = '<p class="repo-row-desc muted">No description</p>'
    if repository.last_pushed_at:
        updated = f"Updated {_escape(reltime(repository.last_pushed_at))}"
    else:
        updated = '<span class="muted">Never pushed</span>'
    pulls, stars = int(repository.pull_count), int(repository.star_count)
    action = f'<div class="repo-row-action">{_escape(star)}</div>\n' if star is not None else ""
    url = _escape(repo_url(repository))
    return mark_safe(  # noqa: S308 - every value escaped
        '<li class="repo-row">\n'
        '  <div class="repo-row-main">\n'
        f'    <h3 class="repo-row-name"><a href="{url}">{name}</a> {badges(repository)}</h3>\n'
        f'    {description}\n'
        '  </div>\n'
        '  <ul class="repo-row-stats" aria-label="Statistics">\n'
        f'    <li title="{stars} stars"><span aria-hidden="true">★</span> {_escape(compact(stars))}'
        '<span class="visually-hidden"> stars</span></li>\n'
        f'    <li title="{pulls} pulls">{_escape(compact(pulls))} pull{"" if pulls == 1 else "s"}</li>\n'
        f'    <li>{updated}</li>\n'
        '  </ul>\n'
        f'  {action}</li>\n'
    )


def tag_row(repository, tag, *, trusted_badge: str = "", can_delete: bool = False) -> SafeString:
    """One tag in the Tags tab: name (and its trusted-build badge, rendered by the caller) with its pull
    command for each client (docker, podman, skopeo: `clients_for`, as the pull box; the client switch
    above the table shows the chosen one's, see templates/repositories/tags.html), digest (copyable),
    platforms, size, when and by whom it was pushed, when it was last pulled, and a delete link. Every
    cell carries its column's name (data-label) for the phone layout."""
    manifest = tag.manifest
    name = _escape(tag.name)
    chips = "".join(f'<span class="chip">{_escape(label)}</span>' for label in
                    (platform_name(platform) for platform in manifest.platforms or ()) if label != "unknown/unknown")
    if not manifest.platforms:
        chips = '<span class="muted small">—</span>'
    pushed_by = f' <span class="muted small">by {_escape(tag.pushed_by.username)}</span>' if tag.pushed_by else ""
    badge = f"<div>{trusted_badge}</div>" if trusted_badge else ""
    pulls = "".join(
        f'<div class="command tag-pull" data-client="{client.name}"><code>{command_html(command)}</code>'
        f'<button class="btn btn-sm" type="button" data-copy="{_escape(command)}" '
        f'aria-label="Copy the {client.name} pull command for {name}" hidden>Copy</button></div>'
        for client in clients_for("pull", f"{repository.display_name}:{tag.name}") for command in client.commands)
    full_digest = _escape(manifest.digest)
    delete = ""
    if can_delete:
        delete = (f'<td class="actions"><a class="btn btn-sm btn-ghost" '
                  f'href="{_escape(repo_url(repository, "tag_delete", tag=tag.name))}" '
                  f'aria-label="Delete tag {name}">Delete</a></td>')
    return mark_safe(  # noqa: S308 - every value escaped
        "<tr>\n"
        f'    <th scope="row" data-label="Tag"><a class="mono" '
        f'href="{_escape(repo_url(repository, "tag_detail", tag=tag.name))}">{name}</a>{badge}'
        f'<div class="tag-pulls">{pulls}</div></th>\n'
        f'    <td data-label="Digest"><span class="digest-copy">{_escape(digest(manifest.digest))}'
        f'<button class="btn btn-sm btn-ghost" type="button" data-copy="{full_digest}" '
        f'aria-label="Copy the digest of {name}" hidden>Copy</button></span></td>\n'
        f'    <td data-label="Platforms"><span class="chips">{chips}</span></td>\n'
        f'    <td class="nowrap" data-label="Size">{_escape(filesize(manifest.total_size))}</td>\n'
        f'    <td data-label="Pushed">{_escape(reltime(tag.pushed_at))}{pushed_by}</td>\n'
        f'    <td class="nowrap" data-label="Last pulled">{_escape(reltime(tag.last_pulled_at))}</td>\n'
        f"    {delete}\n"
        "  </tr>\n"
    )
