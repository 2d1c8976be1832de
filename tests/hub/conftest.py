"""Fixtures for the infrastructure tests: private migrated data dirs, Redis (moto's S3: tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.hub.support import hub_env, manage


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


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set (tests/services.sh provides it)")
    return url
