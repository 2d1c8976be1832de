"""The Hub API's list of a namespace's repositories, in its default order (most recently pushed
first), reads its rows in that order from an index and stops at the end of the page (repositories
migration 0008), instead of reading and sorting every repository of the namespace: for a namespace
of 10,000 repositories that sort was 19 ms a page."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Namespace
from repositories.models import Repository
from tests.query_plans import plan_of

pytestmark = pytest.mark.django_db


def test_a_page_of_a_namespace_is_read_in_order_from_the_index(alice):
    namespace = Namespace.objects.get(user=alice)
    now = timezone.now()
    Repository.objects.bulk_create([
        Repository(namespace=namespace, name=f"app{i:04d}",
                   last_pushed_at=None if i % 10 == 0 else now - dt.timedelta(minutes=i))
        for i in range(2000)])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    with CaptureQueriesContext(connection) as captured:
        response = Client().get(f"/v2/repositories/{alice.username}/")
    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == [f"app{i:04d}" for i in range(1, 12) if i % 10]
    page = next(query["sql"] for query in captured.captured_queries
                if "ORDER BY" in query["sql"] and 'FROM "repositories_repository"' in query["sql"])
    plan = plan_of(page)
    assert "repository_ns_pushed" in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan and "Sort Key" not in plan, plan
