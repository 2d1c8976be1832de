"""Numbers, sizes, times and digests formatted for people, and links to repository pages."""

from __future__ import annotations

import datetime as dt
import functools
import re

from django import template
from django.urls import get_resolver, get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from oci.names import COMPONENT_RE, TAG_RE

register = template.Library()


@register.filter
def compact(value) -> str:
    """1234 → 1.2K, 5600000 → 5.6M; small numbers unchanged."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return ""
    units = ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K"))
    for index, (threshold, suffix) in enumerate(units):
        if abs(number) >= threshold:
            text = f"{number / threshold:.1f}".removesuffix(".0")
            if text == "1000" and index:  # 999,950 rounds up: say 1M, not 1000K
                return f"1{units[index - 1][1]}"
            return f"{text}{suffix}"
    return str(number)


@register.filter
def filesize(value) -> str:
    """Bytes in decimal units, as registries show them: 12.4 MB."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return ""
    if size < 1000:
        return f"{int(size)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.95 or unit == "TB":
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
    return ""  # pragma: no cover


def relative(value: dt.datetime, now: dt.datetime | None = None) -> str:
    now = now or timezone.now()
    seconds = int((now - value).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for size, name in ((31_536_000, "year"), (2_592_000, "month"), (604_800, "week"), (86_400, "day"),
                       (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            count = round(seconds / size) if size <= 3_600 else seconds // size
            text = f"{count} {name}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"  # pragma: no cover


@register.simple_tag
def reltime(value, empty: str = "never"):
    """<time> with a relative text and the exact UTC time as its tooltip."""
    if not value:
        return format_html('<span class="muted">{}</span>', empty)
    exact = timezone.localtime(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    # Only digits, words and punctuation made here: nothing to escape (escaping doubled the cost).
    return mark_safe(f'<time datetime="{value.isoformat()}" title="{exact}">{relative(value)}</time>')  # noqa: S308


@register.filter
def short_digest(value) -> str:
    """sha256:0123456789abcdef… → 0123456789ab (12 hex digits, as docker shows image ids)."""
    if not value:
        return ""
    return str(value).partition(":")[2][:12] or str(value)[:12]


@register.simple_tag
def digest(value):
    """A short digest in monospace with the full digest on hover (and for copy)."""
    if not value:
        return ""
    return format_html('<code class="digest" title="{}">{}</code>', value, short_digest(value))


@register.filter
def platform_name(platform) -> str:
    """{"os": "linux", "architecture": "arm64", "variant": "v8"} → linux/arm64/v8."""
    if not isinstance(platform, dict):
        return ""
    parts = [platform.get("os") or "", platform.get("architecture") or "", platform.get("variant") or ""]
    return "/".join(p for p in parts if p) or "unknown"


def _page_name(repository, page: str) -> tuple[str, dict]:
    if repository.is_official:
        return f"repositories:official_{page}", {"name": repository.name}
    return f"repositories:{page}", {"namespace": repository.namespace.name, "name": repository.name}


# reverse() is a third of the cost of a row in a list of repositories, so each page's URL is reversed
# once with stand-ins and filled in per repository. Values the URL converters (`repo_ns`, `repo_name`,
# `repo_tag`) would refuse take reverse() itself, and its NoReverseMatch; those they accept need no quoting.
_STAND_INS = {"namespace": "0wharfnamespace0", "name": "0wharfname0", "tag": "0wharftag0"}
_STAND_IN_RE = re.compile("|".join(_STAND_INS.values()))
_KEYS = {stand_in: key for key, stand_in in _STAND_INS.items()}
_VALID = {"namespace": re.compile(r"[a-z0-9_-]{1,30}").fullmatch, "name": COMPONENT_RE.fullmatch,
          "tag": TAG_RE.fullmatch}


@functools.lru_cache(maxsize=256)
def _url_parts(name: str, kwarg_names: tuple[str, ...], resolver, prefix: str) -> tuple[str, ...]:
    """reverse() with stand-ins, split into text and kwarg names: ("/r/", "namespace", "/", "name", "")."""
    url = reverse(name, urlconf=resolver.urlconf_name, kwargs={key: _STAND_INS[key] for key in kwarg_names})
    parts = _STAND_IN_RE.split(url)
    keys = [_KEYS[stand_in] for stand_in in _STAND_IN_RE.findall(url)]
    return tuple(part for pair in zip(parts, [*keys, ""], strict=True) for part in pair)[:-1]


@register.simple_tag
def repo_url(repository, page: str = "overview", **extra) -> str:
    """The URL of one of a repository's pages (`/_/<name>` for official images)."""
    name, kwargs = _page_name(repository, page)
    kwargs.update(extra)
    if not all(key in _VALID and isinstance(value, str) and _VALID[key](value) for key, value in kwargs.items()):
        return reverse(name, kwargs=kwargs)
    parts = _url_parts(name, tuple(kwargs), get_resolver(get_urlconf()), get_script_prefix())
    return "".join(kwargs[part] if index % 2 else part for index, part in enumerate(parts))
