"""Makefile targets, run for real with the existing virtualenv (`-o` keeps make from reinstalling it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.hub.support import hub_env, run_django
from tests.live import REPO_ROOT

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")

ADMIN = {"HUB_ADMIN_USERNAME": "rootadmin", "HUB_ADMIN_EMAIL": "root@example.com",
         "HUB_ADMIN_PASSWORD": "Quay-Pulp-Harbor-42"}


def make(env: dict[str, str], target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.deps", target], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )


def test_make_superuser_creates_an_admin_from_the_environment(data_dir):
    env = hub_env(data_dir, **ADMIN)
    result = make(env, "superuser")
    assert result.returncode == 0, result.stdout + result.stderr
    check = run_django(env, (
        "from accounts.models import User\n"
        "user = User.objects.get(username='rootadmin')\n"
        "print(user.is_staff, user.is_superuser, user.email, user.check_password('Quay-Pulp-Harbor-42'))\n"
    ))
    assert check.stdout.strip().splitlines()[-1] == "True True root@example.com True"

