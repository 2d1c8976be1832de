import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite]


def test_gunicorn_serves_home_and_health(live_hub):
    assert requests.get(f"{live_hub.url}/healthz", timeout=5).json() == {"status": "ok"}
    home = requests.get(f"{live_hub.url}/", timeout=5)
    assert home.status_code == 200 and "Wharf" in home.text


def test_gunicorn_is_ready_with_every_service(live_hub):
    response = requests.get(f"{live_hub.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text


def test_static_files_served_by_whitenoise(live_hub):
    response = requests.get(f"{live_hub.url}/static/admin/css/base.css", timeout=5)
    assert response.status_code == 200 and "text/css" in response.headers["Content-Type"]
