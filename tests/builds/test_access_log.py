"""gunicorn's access log never holds a build trigger token (hub.gunicorn_logging)."""

import datetime
import logging
import time
import uuid
from types import SimpleNamespace

import pytest
import requests
from gunicorn.config import Config

from hub.gunicorn_logging import RedactingLogger, redact

UUID = "3f1e9a52-7c1d-4c3e-9a57-0b6f4f3d2a11"
TOKEN = "Zq8-secret_trigger_token_value"


@pytest.mark.parametrize(("path", "expected"), [
    (f"/api/build/{UUID}/trigger/{TOKEN}/", f"/api/build/{UUID}/trigger/***/"),
    (f"/api/build/{UUID}/trigger/{TOKEN}", f"/api/build/{UUID}/trigger/***"),
    (f"/api/build/{UUID}/trigger/{TOKEN}/?x=1", f"/api/build/{UUID}/trigger/***/?x=1"),
    (f"POST /api/build/{UUID}/bitbucket/{TOKEN}/ HTTP/1.1", f"POST /api/build/{UUID}/bitbucket/***/ HTTP/1.1"),
    (f"/api/build/{UUID}/github/", f"/api/build/{UUID}/github/"),
    ("/v2/alice/app/manifests/latest", "/v2/alice/app/manifests/latest"),
])
def test_redact(path, expected):
    assert redact(path) == expected


def test_non_strings_pass_through():
    assert redact(200) == 200 and redact(None) is None


def access_line(raw_uri: str, fmt: str | None = None) -> str:
    config = Config()
    config.set("accesslog", "-")
    if fmt:
        config.set("access_log_format", fmt)
    logger = RedactingLogger(config)
    captured = []
    handler = logging.Handler()
    handler.emit = lambda record: captured.append(record.getMessage())
    logger.access_log.handlers = [handler]
    path = raw_uri.split("?", 1)[0]
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": raw_uri, "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": raw_uri,
               "HTTP_USER_AGENT": "git/2.39"}
    response = SimpleNamespace(status="202 Accepted", sent=10, headers=[("Content-Type", "application/json")])
    request = SimpleNamespace(headers=[("HOST", "hub.example"), ("USER-AGENT", "git/2.39")])
    logger.access(response, request, environ, datetime.timedelta(milliseconds=5))
    assert len(captured) == 1
    return captured[0]


def test_the_default_format_is_redacted():
    line = access_line(f"/api/build/{UUID}/trigger/{TOKEN}/")
    assert TOKEN not in line and f"/api/build/{UUID}/trigger/***/" in line and " 202 " in line


def test_every_atom_is_redacted():
    line = access_line(f"/api/build/{UUID}/trigger/{TOKEN}/",
                       fmt='%(r)s|%(U)s|%(f)s|%({raw_uri}e)s|%({path_info}e)s|%({http_referer}e)s')
    assert TOKEN not in line and line.count("/trigger/***/") == 6


def test_gunicorn_conf_uses_the_redacting_logger(monkeypatch):
    from tests.live import REPO_ROOT

    # The file sets HUB_DB_POOL for the web workers, not for the rest of the run: setenv records the variable's
    # state before (delenv of an absent one records nothing), so monkeypatch undoes what the file sets.
    monkeypatch.setenv("HUB_DB_POOL", "")
    monkeypatch.delenv("HUB_DB_POOL")
    namespace: dict = {}
    exec(compile((REPO_ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["logger_class"] == "hub.gunicorn_logging.RedactingLogger"


@pytest.mark.e2e
def test_a_live_gunicorn_logs_no_token(artifacts_dir, tmp_path):
    from tests.live import start_hub

    access_log = tmp_path / "access.log"
    hub = start_hub(artifacts_dir, with_worker=False, HUB_ACCESS_LOG=str(access_log))
    try:
        token = f"live-{uuid.uuid4().hex}"
        response = requests.post(f"{hub.url}/api/build/{uuid.uuid4()}/trigger/{token}/", json={}, timeout=10)
        assert response.status_code >= 400  # unknown source (or builds off): refused, and logged
        deadline = time.monotonic() + 10
        while "/trigger/***/" not in (access_log.read_text() if access_log.exists() else ""):
            assert time.monotonic() < deadline, "the request never reached the access log"
            time.sleep(0.2)
    finally:
        hub.stop()
    text = access_log.read_text()
    assert token not in text and token not in hub.log()
