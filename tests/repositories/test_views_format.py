"""The template filters the pages use: counts, sizes, relative times, digests, platforms, URLs."""

import datetime as dt

import pytest
from django.utils import timezone

from repositories.templatetags.repo_format import (
    compact,
    digest,
    filesize,
    platform_name,
    relative,
    reltime,
    short_digest,
)


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (999, "999"), (1000, "1K"), (1234, "1.2K"),
                                             (999_950, "1M"), (5_600_000, "5.6M"), (2_000_000_000, "2B"),
                                             (None, "")])
def test_compact(value, text):
    assert compact(value) == text


@pytest.mark.parametrize(("value", "text"), [(0, "0 B"), (999, "999 B"), (1500, "1.5 kB"),
                                             (12_400_000, "12.4 MB"), (3_000_000_000, "3.0 GB"),
                                             (250_000_000, "250 MB")])
def test_filesize(value, text):
    assert filesize(value) == text


def test_relative_times():
    now = timezone.now()
    assert relative(now - dt.timedelta(seconds=5), now) == "just now"
    assert relative(now - dt.timedelta(minutes=5), now) == "5 minutes ago"
    assert relative(now - dt.timedelta(days=3), now) == "3 days ago"
    assert relative(now - dt.timedelta(days=1), now) == "1 day ago"
    assert relative(now - dt.timedelta(days=400), now) == "1 year ago"


def test_reltime_has_exact_tooltip():
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    html = reltime(when)
    assert 'title="2025-01-02 03:04:05 UTC"' in html and 'datetime="2025-01-02T03:04:05+00:00"' in html
    assert "never" in reltime(None)


def test_digests():
    value = "sha256:" + "0123456789abcdef" * 4
    assert short_digest(value) == "0123456789ab"
    assert digest(value) == f'<code class="digest" title="{value}">0123456789ab</code>'


def test_platform_name():
    assert platform_name({"os": "linux", "architecture": "arm64", "variant": "v8"}) == "linux/arm64/v8"
    assert platform_name({"os": "linux", "architecture": "amd64", "variant": ""}) == "linux/amd64"
    assert platform_name({}) == "unknown"
