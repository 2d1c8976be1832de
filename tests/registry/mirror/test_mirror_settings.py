"""The pull-through cache's settings as the environment gives them (hub/settings.py): HUB_MIRRORS with
credentials, HUB_MIRROR_HOSTS (port ignored, added to the allowed hosts), HUB_MIRROR_READERS, the
defaults (a 300 s tag TTL, no anonymous pulls, an unbounded cache with no eviction task), and a host or
readers entry naming no mirror refused at start. Each case loads the settings in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.live import REPO_ROOT

pytestmark = pytest.mark.sqlite

SHOW = """
import json
from django.conf import settings
print(json.dumps({
    "mirrors": {p: [m.url, m.username, m.display] for p, m in settings.HUB_MIRRORS.items()},
    "repr": repr(settings.HUB_MIRRORS),
    "hosts": settings.HUB_MIRROR_HOSTS, "readers": {p: list(o) for p, o in settings.HUB_MIRROR_READERS.items()},
    "ttl": settings.HUB_MIRROR_TTL_SECONDS, "anonymous": settings.HUB_MIRROR_ANONYMOUS,
    "max_bytes": settings.HUB_MIRROR_MAX_BYTES, "allowed_hosts": settings.ALLOWED_HOSTS,
    "evicts": "evict-mirrors" in settings.CELERY_BEAT_SCHEDULE,
}))
"""


def load(**variables: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("HUB_MIRROR")}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", **variables)
    return subprocess.run([sys.executable, "-c", SHOW], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_environment_configures_the_mirrors():
    result = load(HUB_MIRRORS="dockerhub=https://bot:s3cr%40t@registry-1.docker.io,ghcr=https://ghcr.io",
                  HUB_MIRROR_HOSTS="Mirror.Example.com:5000=dockerhub", HUB_MIRROR_READERS="dockerhub=acme,opsteam",
                  HUB_MIRROR_MAX_BYTES="1000000")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["mirrors"] == {"dockerhub": ["https://registry-1.docker.io", "bot", "docker.io"],
                                "ghcr": ["https://ghcr.io", None, "ghcr.io"]}
    assert "s3cr@t" not in shown["repr"] and "s3cr%40t" not in shown["repr"]
    assert shown["hosts"] == {"mirror.example.com": "dockerhub"}  # lowercased, the port dropped
    assert "mirror.example.com" in shown["allowed_hosts"]
    assert shown["readers"] == {"dockerhub": ["acme", "opsteam"]}
    assert shown["ttl"] == 300 and shown["anonymous"] is False  # the defaults
    assert shown["max_bytes"] == 1_000_000 and shown["evicts"] is True


def test_no_bound_no_eviction_task_and_the_defaults_can_be_changed():
    result = load(HUB_MIRRORS="dockerhub=https://registry-1.docker.io", HUB_MIRROR_TTL_SECONDS="60",
                  HUB_MIRROR_ANONYMOUS="1")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["ttl"] == 60 and shown["anonymous"] is True
    assert shown["max_bytes"] == 0 and shown["evicts"] is False


@pytest.mark.parametrize(("variables", "named"), [
    ({"HUB_MIRROR_HOSTS": "mirror.example.com=nope"}, "'nope' is not a mirror prefix"),
    ({"HUB_MIRROR_READERS": "nope=acme"}, "'nope' is not a mirror prefix"),
    ({"HUB_MIRROR_TTL_SECONDS": "-1"}, "HUB_MIRROR_TTL_SECONDS=-1"),
    ({"HUB_MIRROR_READERS": "dockerhub=acme,ops"}, "'ops' is not an organization name"),  # none is that short
])
def test_settings_naming_no_mirror_are_refused(variables, named):
    result = load(HUB_MIRRORS="dockerhub=https://registry-1.docker.io", **variables)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and named in result.stderr
