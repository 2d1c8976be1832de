"""The footer's Status page: each part of the hub up or down, for people, without the operator's error text."""

import pytest

from hub import health, views

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fresh_checks(monkeypatch):
    monkeypatch.setattr(views, "_status_seen", None)


def test_every_part_operational(client):
    response = client.get("/status")
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("Database", "Image storage", "Cache", "Task queue", "Signing and encryption keys"):
        assert f"<span>{name}</span> <span class=\"badge badge-success\">Operational</span>" in html
    assert "Unavailable" not in html


def test_a_broken_part_is_named_without_its_error(client, monkeypatch):
    def broken():
        raise OSError("/srv/secret/path is gone")

    monkeypatch.setitem(health.CHECKS, "storage", broken)
    response = client.get("/status")
    html = response.content.decode()
    assert response.status_code == 503
    assert '<span>Image storage</span> <span class="badge badge-danger">Unavailable</span>' in html
    assert "/srv/secret/path" not in html


def test_checked_at_most_every_few_seconds(client, monkeypatch):
    calls = []
    monkeypatch.setattr(views, "run_checks", lambda: calls.append(1) or {"database": "ok"})
    for _ in range(5):
        assert client.get("/status").status_code == 200
    assert len(calls) == 1


def test_the_footer_links_to_it(client):
    assert 'href="/status">Status</a>' in client.get("/explore").content.decode()
