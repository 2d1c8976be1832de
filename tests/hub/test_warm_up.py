"""A worker does at start what its first requests would each pay once (hub/wsgi.py `_warm_up`)."""

from __future__ import annotations

import pytest

from registry import tokens
from tests.hub.support import hub_env, run_python

# Which views' modules were already imported when loading the site finished (before anything resolved a URL).
IMPORTED_AT_LOAD = """
import sys
import hub.wsgi
loaded = set(sys.modules)
from django.urls import get_resolver
def callbacks(resolver):
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from callbacks(pattern)
        else:
            yield pattern.callback.__module__
views = set(callbacks(get_resolver()))
print(len(views), sorted(views - loaded))
"""


def test_loading_the_site_imports_every_view_module(tmp_path):
    out = run_python(hub_env(tmp_path / "data"), IMPORTED_AT_LOAD).stdout.strip().splitlines()[-1]
    count, missing = out.split(" ", 1)
    assert int(count) > 20  # registry, token, pages, API, allauth views
    assert missing == "[]", f"views first imported by a request: {missing}"


@pytest.mark.django_db
def test_the_token_warm_up_reads_no_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        tokens.warm_up()
