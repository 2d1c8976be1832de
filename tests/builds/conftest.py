"""Builds fixtures: alice's repository linked to a local Git source under an allowed root; a one-commit Git
repository (`source`)."""

import subprocess
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.models import Namespace
from builds.services import build_source_link
from hub.api import issue_api_token
from tests.factories import RepositoryFactory


@pytest.fixture
def build_settings(settings, tmp_path):
    root = tmp_path / "sources"
    root.mkdir()
    settings.HUB_BUILDS_ENABLED = True
    settings.HUB_BUILD_LOCAL_ROOTS = [str(root.resolve())]
    return settings


@pytest.fixture
def source(tmp_path) -> tuple[Path, str]:
    """(path, commit) of a Git repository with one commit: a Dockerfile `FROM scratch`."""
    repo = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "Dockerfile").write_text("FROM scratch\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return repo, subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repository(alice):
    return RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="app")


@pytest.fixture
def linked(build_settings, repository, alice):
    """(source, token) for alice/app linked to a local path under the allowed root."""
    path = f"{build_settings.HUB_BUILD_LOCAL_ROOTS[0]}/app"
    return build_source_link(repository=repository, url=path, default_branch="main", user=alice)


def api_client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_api_token(user=user)}")
    return client
