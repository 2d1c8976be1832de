"""The Statistics tab: daily pulls as an SVG chart with a text alternative, stars over time."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from repositories.models import PullStat, Star
from tests.factories import UserFactory
from tests.repositories.pages_support import page_url, personal_repo

pytestmark = pytest.mark.django_db


def test_stats_chart_has_labels_title_and_table(alice):
    repo = personal_repo(alice, pull_count=1234)
    today = timezone.now().date()
    PullStat.objects.create(repository=repo, tag="", day=today, count=7)
    PullStat.objects.create(repository=repo, tag="", day=today - dt.timedelta(days=3), count=2)
    PullStat.objects.create(repository=repo, tag="v1", day=today, count=7)  # per-tag rows are not the total
    response = Client().get(page_url(repo, "stats"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<title id="pulls-chart-title">Pulls per day, last 30 days</title>' in html
    assert '<desc id="pulls-chart-desc">' in html
    assert "9 in total" in html and "at most 7" in html
    assert "1.2K" in html  # total pulls
    assert f"<td>{today:%Y-%m-%d}</td><td>7</td>" in html
    assert html.count('class="chart-bar"') == 30


@pytest.mark.parametrize("days", [30, 90, 365])
def test_stats_ranges(alice, days):
    repo = personal_repo(alice)
    response = Client().get(page_url(repo, "stats"), {"days": days})
    assert response.context["days"] == days
    assert len(response.context["pulls"]) == days


def test_stats_bad_range_falls_back_to_30(alice):
    repo = personal_repo(alice)
    assert Client().get(page_url(repo, "stats"), {"days": "lots"}).context["days"] == 30
    assert Client().get(page_url(repo, "stats"), {"days": "7"}).context["days"] == 30


def test_stars_over_time_is_a_running_total(alice):
    repo = personal_repo(alice)
    now = timezone.now()
    Star.objects.create(repository=repo, user=UserFactory(), created_at=now - dt.timedelta(days=100))
    Star.objects.create(repository=repo, user=UserFactory(), created_at=now - dt.timedelta(days=2))
    response = Client().get(page_url(repo, "stats"))
    assert "Stars, last 30 days: from 1 on" in response.content.decode()
    assert "to 2 on" in response.content.decode()


def test_stats_empty_state(alice):
    repo = personal_repo(alice)
    html = Client().get(page_url(repo, "stats")).content.decode()
    assert "No pulls yet" in html and "no data" not in html


def test_private_stats_are_404_for_strangers(alice, charlie):
    repo = personal_repo(alice, private=True)
    client = Client()
    client.force_login(charlie)
    assert client.get(page_url(repo, "stats")).status_code == 404
