"""The build worker needs none of the site's secrets: it imports no Django, and `manage.py serve` starts it
with an environment that holds where the hub and the broker are, and nothing else of the site."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.hub.support import process_group_members
from tests.hub.test_serve import serve, stop
from tests.live import REPO_ROOT

# The worker may use lib.outbound's address checks (pure Python); kombu imports a Django utility
# when Django is installed, which is harmless as long as no settings are ever configured.
PURE_MODULES = {"builds", "builds.constants", "builds.executor", "builds.runner", "builds.source_safety",
                "builds.sandbox", "builds.seccomp", "builds.context_check", "builds.leftovers",
                "builds.worker", "builds.worker_client", "lib", "lib.outbound"}
SITE_PACKAGES = ("hub", "accounts", "repositories", "registry", "webhooks", "builds", "rest_framework")
SITE_VARIABLES = {"SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "HUB_DATA_DIR", "HUB_ENCRYPTION_KEY",
                  "HUB_TEST_POSTGRES_URL"}


def test_the_build_worker_imports_nothing_of_the_site(tmp_path):
    probe = ("import json, sys, builds.worker\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SITE_PACKAGES!r})))\n"
             "settings = sys.modules.get('django.conf')\n"
             "print(bool(settings and settings.settings.configured))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HUB_BUILD_BROKER_DIR": str(tmp_path / "broker")},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    modules, configured = result.stdout.strip().splitlines()
    assert set(json.loads(modules)) <= PURE_MODULES, modules
    assert configured == "False"


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@pytest.mark.e2e
def test_serve_starts_the_build_worker_without_the_site_secrets(tmp_path):
    served = serve(tmp_path, HUB_BUILDS_ENABLED="1", SECRET_KEY="s" * 50,
                   HUB_ENCRYPTION_KEY=Fernet.generate_key().decode())
    try:
        workers = [pid for pid in process_group_members(served.process.pid) if "builds.worker" in command_of(pid)]
        assert workers, "serve started no build worker"
        environment = environment_of(workers[0])
        assert not SITE_VARIABLES & set(environment), sorted(SITE_VARIABLES & set(environment))
        assert environment["HUB_INTERNAL_REGISTRY"] == f"127.0.0.1:{served.port}"
        assert environment["HUB_BUILD_BROKER_DIR"] == str(served.data_dir / "celery")
        assert not any(str(served.data_dir / "keys") in value for value in environment.values())
    finally:
        assert stop(served) == []
