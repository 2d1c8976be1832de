"""Fixtures for the infrastructure tests: private migrated data dirs, an S3 emulator, Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.hub.support import hub_env, manage
from tests.live import BIN, GiveUp, free_port, wait_until


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """A migrated SQLite data dir (no collectstatic: only test_serve needs static files, and does it)."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    env = hub_env(data_dir)
    manage(env, "migrate", "--noinput")
    return data_dir


@pytest.fixture
def data_dir(tmp_path, migrated_template) -> Path:
    """A private, already migrated SQLite data dir (a copy of the session template)."""
    target = tmp_path / "data"
    shutil.copytree(migrated_template, target)
    return target


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """moto's S3 emulator on a free loopback port, for the whole session."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp("moto_server exited")
        return requests.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500

    try:
        wait_until(answers, timeout=30, message="moto_server to answer")
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set (tests/services.sh provides it)")
    return url
