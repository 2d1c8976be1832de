import json

import pytest

from tests.hub.support import hub_env, run_django

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_every_backing_service(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "storage", "cache", "broker", "keys"}
    assert all(value == "ok" for value in body["checks"].values())


def test_readyz_reports_a_broken_service(client, monkeypatch):
    from hub import health

    def broken():
        raise OSError("disk gone")

    monkeypatch.setitem(health.CHECKS, "storage", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("error: OSError")



def test_readyz_reports_a_missing_filesystem_broker_folder(data_dir):
    queue = data_dir / "celery" / "queue"
    # Importing the settings creates the folder: remove it once Django is set up, then check.
    code = (
        f"import json, shutil\nshutil.rmtree({str(queue)!r})\n"
        "from hub.health import run_checks\nprint(json.dumps(run_checks()))\n"
    )
    checks = json.loads(run_django(hub_env(data_dir), code).stdout.strip().splitlines()[-1])
    assert checks["broker"].startswith("error: OSError")


@pytest.mark.parametrize("host", ["10.0.0.12:8000", "[fd00::5]:8000", "evil.example"])
def test_probes_answer_whatever_the_host_header(client, host, settings):
    """kubelet, HAProxy and Prometheus reach a node by its address: host validation must not refuse them."""
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    assert client.get("/healthz", HTTP_HOST=host).status_code == 200
    assert client.get("/readyz", HTTP_HOST=host).status_code in (200, 503)
    assert client.get("/metrics", HTTP_HOST=host).status_code in (401, 404)  # never the token-less metrics
    assert client.get("/", HTTP_HOST=host).status_code == 400  # the rest of the site still validates it
