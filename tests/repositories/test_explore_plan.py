"""Explore at Docker Hub's size: the official images' section finds the `library` namespace through
an index on the namespace's kind (accounts migration 0010), not by reading every account's row (at
100,000 accounts that scan was 6 of the page's 9 ms of SQL)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from repositories.selectors import explore_sections
from tests.query_plans import many_accounts, plan_of
from tests.repositories.pages_support import official_repo, personal_repo

pytestmark = pytest.mark.django_db


def test_the_official_section_reads_the_library_namespace_by_its_kind(alice):
    official_repo(name="alpine", pull_count=5)
    personal_repo(alice, name="popular", pull_count=100)
    many_accounts()
    with CaptureQueriesContext(connection) as captured:
        sections = explore_sections()
    assert [repository.name for repository in sections["official"]] == ["alpine"]
    official = next(query["sql"] for query in captured.captured_queries if "'library'" in query["sql"])
    assert "namespace_kind" in plan_of(official)
