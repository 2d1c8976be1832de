import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_every_backing_service(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "storage", "cache", "broker"}
    assert all(value == "ok" for value in body["checks"].values())


def test_readyz_reports_a_broken_service(client, monkeypatch):
    from hub import health

    def broken():
        raise OSError("disk gone")

    monkeypatch.setitem(health.CHECKS, "storage", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("error: OSError")
