"""Helpers for the infrastructure tests: Wharf processes run with a chosen environment.

Most tests here run the real settings module in a child process with a chosen environment, because
settings are read once at import and the test process has its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.live import REPO_ROOT

# Variables that change what hub.settings selects: removed from every child's environment first.
HUB_VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "EMAIL_URL", "DEFAULT_FROM_EMAIL",
    "PORT", "DJANGO_SETTINGS_MODULE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION", "AWS_PROFILE",
)


def hub_env(data_dir: Path | str, **extra: str) -> dict[str, str]:
    """The test process's environment minus every Wharf setting, plus a data dir and `extra`."""
    env = {
        name: value for name, value in os.environ.items()
        if name not in HUB_VARIABLES and not name.startswith("HUB_")
    }
    env.update(DJANGO_SETTINGS_MODULE="hub.settings", HUB_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


def run_python(env: dict[str, str], code: str, *, check: bool = True, timeout: float = 60,
               cwd: Path | str = REPO_ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"child failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def settings_values(env: dict[str, str], *names: str, cwd: Path | str = REPO_ROOT) -> dict:
    """Import hub.settings in a child process with `env` and return the named values (as JSON)."""
    code = (
        "import json, hub.settings as s\n"
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}, default=str))\n"
    )
    return json.loads(run_python(env, code, cwd=cwd).stdout.strip().splitlines()[-1])


def settings_error(env: dict[str, str]) -> str:
    """Import hub.settings with `env`, expect it to fail, and return the last line of the traceback."""
    result = run_python(env, "import hub.settings", check=False)
    assert result.returncode != 0, "hub.settings imported although it should have refused the environment"
    return result.stderr.strip().splitlines()[-1]


def run_django(env: dict[str, str], code: str, *, check: bool = True, timeout: float = 60
               ) -> subprocess.CompletedProcess:
    """Run `code` in a child process with Django set up (what `manage.py shell -c` does)."""
    return run_python(env, "import django\ndjango.setup()\n" + code, check=check, timeout=timeout)


def manage(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def redis_db(url: str, db: int) -> str:
    """The same Redis server, another database number (keeps test queues apart from the live hub's)."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the living processes (not zombies) in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
