"""The dashboard's activity icons are inline SVG: U+FF0B (the "became a collaborator" icon) and U+2912 were
missing-glyph boxes with Debian's fonts."""

from pathlib import Path

import pytest
from django.template.loader import render_to_string

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize(("kind", "icon"), [("push", "push"), ("star", "star"), ("collaborator", "collaborator")])
def test_each_activity_kind_has_an_svg_icon(kind, icon):
    html = render_to_string("includes/activity_icon.html", {"kind": kind})
    assert html.strip().endswith("</svg>") and f'data-icon="{icon}"' in html


def test_the_dashboard_uses_no_character_icons_missing_from_debian_fonts():
    home = (TEMPLATES / "hub" / "home.html").read_text()
    assert "\uff0b" not in home and "\u2912" not in home
