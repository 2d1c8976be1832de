"""Search and explore: a fixed number of queries whatever the number of rows, and no READMEs read for rows."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from repositories.models import Star
from tests.repositories.pages_support import official_repo, personal_repo

pytestmark = pytest.mark.django_db


def queries(client: Client, path: str) -> list[str]:
    client.get(path)  # warm: session, site settings
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("rows", [2, 12])
def test_search_queries_do_not_grow_with_the_rows(alice, bob, rows):
    for i in range(rows):
        repository = personal_repo(bob, name=f"costly{i:02d}", full_description="# README\n" * 100)
        if i % 2:
            Star.objects.create(repository=repository, user=alice)
    client = Client()
    client.force_login(alice)
    statements = queries(client, "/search?q=costly")
    # session, user, count, exact name matches, page, stars of the page; PostgreSQL first looks up
    # the matching namespaces
    assert len(statements) == (7 if connection.vendor == "postgresql" else 6)
    assert not any("full_description" in sql for sql in statements)
    assert Client().get("/search?q=costly").content.decode().count('class="repo-row"') == rows


def test_explore_reads_no_readmes(alice):
    official_repo(name="alpine", pull_count=5, full_description="# Alpine\n" * 100)
    personal_repo(alice, name="popular", pull_count=100, star_count=3, full_description="# Popular\n" * 100)
    statements = queries(Client(), "/explore")
    assert len(statements) == 4  # one per section
    assert not any("full_description" in sql for sql in statements)
