"""Test settings: the real settings module, a private data dir and a fast password hasher."""

import atexit
import os
import shutil
import tempfile

if not os.environ.get("HUB_DATA_DIR"):
    # A private data dir for this test run (live servers started by the tests inherit it).
    os.environ["HUB_DATA_DIR"] = tempfile.mkdtemp(prefix="wharf-test-")
    atexit.register(shutil.rmtree, os.environ["HUB_DATA_DIR"], ignore_errors=True)

from hub.settings import *  # noqa: F403
from hub.settings import DATA_DIR, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so a live gunicorn in another process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
LIVE = os.environ.get("HUB_TEST_LIVE") == "1"  # a live gunicorn or Celery worker started by the tests

if not LIVE:
    # Pages rendered by the test client need no collectstatic; the live gunicorn uses the manifest.
    STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
    # In-process tests flush pulls explicitly (flush_pull_counters); the writer thread stays idle.
    PULL_BUFFER_WRITE_SECONDS = 3600.0
