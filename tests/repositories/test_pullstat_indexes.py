"""The daily pull statistics (10,000,000 rows at the Hub's scale) keep one index: the unique
(repository, tag, day). The statistics read it by repository, tag and days; a (repository, day)
index and the foreign key's own only repeated it (359 MB of a 2.4 GB database)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from repositories.models import PullStat
from repositories.selectors import daily_pulls
from tests.query_plans import plan_of
from tests.repositories.pages_support import personal_repo

pytestmark = pytest.mark.django_db


def index_columns() -> list[tuple[str, ...]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, PullStat._meta.db_table)
    return [tuple(found["columns"]) for found in constraints.values()
            if (found["index"] or found["unique"]) and not found["primary_key"]]


def test_the_unique_index_is_the_only_one():
    # Every read fixes the tag (the statistics: ''), so (repository, day) and (repository) would only
    # repeat what (repository, tag, day) answers.
    assert index_columns() == [("repository_id", "tag", "day")]


def test_the_statistics_read_the_unique_index(alice):
    repository = personal_repo(alice)
    today = dt.date(2026, 12, 6)
    PullStat.objects.bulk_create([PullStat(repository=repository, tag=tag, day=today - dt.timedelta(days=back),
                                           count=back + 1) for back in range(30) for tag in ("", "latest")])
    with CaptureQueriesContext(connection) as captured:
        pulls = daily_pulls(repository, 7, today=today)
    assert [count for _, count in pulls] == [7, 6, 5, 4, 3, 2, 1]
    plan = plan_of(captured.captured_queries[0]["sql"])
    assert "pull_stat_unique" in plan or "sqlite_autoindex_repositories_pullstat" in plan, plan
