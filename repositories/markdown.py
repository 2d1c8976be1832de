"""README rendering: Markdown to HTML, then sanitized with nh3 (an allow-list, never a deny-list).

Python-Markdown takes super-linear time on some inputs (`"[" * 25000` ran 109 s, `"<a " * 8000` 6 s)
and recursion on others, and under the gevent workers a render in the request would stop every
request of the worker. So Markdown runs in a child process with a time limit (whatever the input, a
page waits at most RENDER_SECONDS), and each description is rendered once: the sanitized HTML is
cached by the text's hash. Input that does not render in time is shown as plain text.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import markdown as markdown_lib
import nh3
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
EXTENSIONS = ["fenced_code", "tables", "sane_lists", "nl2br"]
RENDER_SECONDS = 3.0
CACHE_SECONDS = 7 * 24 * 3600
PLAIN_CACHE_SECONDS = 600  # a render that failed is tried again later (the machine may have been busy)
SITE_ROOT = Path(__file__).resolve().parent.parent


def render_markdown(text: str) -> SafeString:
    """Markdown → safe HTML: no scripts, no event handlers, no javascript: or data: URLs."""
    if not text or not text.strip():
        return mark_safe("")
    key = "readme-html:" + hashlib.sha256(text.encode()).hexdigest()
    clean = cache.get(key)
    if clean is None:
        html = _markdown_in_child(text)
        if html is None:
            clean, seconds = f"<pre>{escape(text)}</pre>", PLAIN_CACHE_SECONDS
        else:
            clean, seconds = _sanitize(html), CACHE_SECONDS
        cache.set(key, clean, seconds)
    return mark_safe(clean)  # noqa: S308 - sanitized by nh3, or escaped


def _markdown_in_child(text: str) -> str | None:
    """The HTML Python-Markdown makes of `text`, or None when it fails or takes too long."""
    try:
        done = subprocess.run([sys.executable, "-m", "repositories.markdown"], input=text.encode(),
                              capture_output=True, timeout=RENDER_SECONDS, check=False, cwd=SITE_ROOT)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.decode() if done.returncode == 0 else None  # a RecursionError exits 1


def markdown_to_html(text: str) -> str:
    return markdown_lib.markdown(text, extensions=EXTENSIONS, output_format="html")


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


if __name__ == "__main__":  # the child process: Markdown on stdin, HTML on stdout (no Django here)
    sys.stdout.buffer.write(markdown_to_html(sys.stdin.buffer.read().decode()).encode())
