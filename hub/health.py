"""Readiness checks: is each backing service reachable from this process?"""

from __future__ import annotations

import os
import uuid

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection

from hub import keycheck


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_storage() -> None:
    storage = storages["blobs"]
    name = f"_readyz/{uuid.uuid4().hex}"
    saved = storage.save(name, ContentFile(b"ok"))
    storage.delete(saved)


def check_cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was stored")
    cache.delete(key)


def check_broker() -> None:
    from hub.celery import app

    if app.conf.broker_url.startswith(("filesystem://", "wharf-fs://")):
        # kombu's filesystem transport "connects" whatever the folders are: look at them instead.
        options = app.conf.broker_transport_options
        for key in ("data_folder_in", "data_folder_out", "control_folder", "processing_folder"):
            folder = options.get(key)
            if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
                raise OSError(f"broker folder {folder} is missing or not writable")
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def check_keys() -> None:
    """This node signs and encrypts with the cluster's keys (hub/keycheck.py)."""
    keycheck.check()


CHECKS = {"database": check_database, "storage": check_storage, "cache": check_cache, "broker": check_broker,
          "keys": check_keys}
# Failures whose message is written for the operator: shown as they are, whole.
OPERATOR_MESSAGES = (keycheck.KeysDiffer,)


def run_checks() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except OPERATOR_MESSAGES as exc:
            results[name] = f"error: {exc}"[:1000]
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        else:
            results[name] = "ok"
    return results
