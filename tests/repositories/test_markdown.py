"""README rendering: Markdown in, sanitized HTML out."""

import time

import pytest
from django.utils.html import escape

from repositories import markdown as markdown_module
from repositories.markdown import RENDER_SECONDS, render_markdown

pytestmark = pytest.mark.django_db  # rendered descriptions are cached (the database cache when embedded)


def test_renders_common_markdown():
    html = render_markdown("# Title\n\nSome *text* and `code`.\n\n```\nrun me\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h1>Title</h1>" in html
    assert "<em>text</em>" in html and "<code>code</code>" in html
    assert "<pre><code>run me" in html
    assert "<table>" in html and "<td>1</td>" in html


@pytest.mark.parametrize("source", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    "<iframe src=https://evil.example></iframe>",
    '<div onclick="alert(1)">x</div>',
    "<style>body{display:none}</style>",
    '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
])
def test_dangerous_markup_is_stripped(source):
    html = render_markdown(source).lower()
    for bad in ("<script", "onerror", "javascript:", "<iframe", "onclick", "<style", "data:"):
        assert bad not in html


def test_links_get_rel_nofollow_and_keep_http_urls():
    html = render_markdown("[site](https://example.com)")
    assert 'href="https://example.com"' in html
    assert 'rel="nofollow noopener noreferrer"' in html


def test_images_keep_alt_and_src():
    html = render_markdown("![logo](https://example.com/logo.png)")
    assert 'src="https://example.com/logo.png"' in html and 'alt="logo"' in html


def test_empty_text_renders_nothing():
    assert render_markdown("") == "" and render_markdown("   \n") == ""


@pytest.mark.parametrize("source", ["[" * 25000, "<a " * 16000, "- " * 12000 + "x"],
                         ids=["brackets", "open-tags", "deep-list"])
def test_input_markdown_cannot_render_in_time_is_shown_as_text(source):
    """Python-Markdown is super-linear on some inputs (109 s for the brackets) and recursion-bound
    on others; a page must not wait for it. Each input takes several times the limit: 8,000 open tags
    took 3.15 s on a quiet machine, under the limit once in a fresh-clone run; 12,000 took 7.15 s."""
    started = time.monotonic()
    html = render_markdown(source)
    assert time.monotonic() - started < RENDER_SECONDS + 2
    assert html == f"<pre>{escape(source)}</pre>"


def test_a_description_is_rendered_once(monkeypatch):
    source = f"# Rendered once {time.time_ns()}"
    first = render_markdown(source)
    monkeypatch.setattr(markdown_module, "_markdown_in_child", lambda text: pytest.fail("rendered again"))
    assert render_markdown(source) == first
    assert "<h1>Rendered once" in first
