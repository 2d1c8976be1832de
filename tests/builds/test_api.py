"""Hub API for builds: source, rules, builds; admins manage, pullers read, strangers see nothing private."""

import pytest

from builds import logs
from builds.models import Build
from builds.services import builds_trigger
from tests.builds.conftest import api_client

pytestmark = pytest.mark.django_db


def test_link_a_local_source(build_settings, repository, alice):
    path = f"{build_settings.HUB_BUILD_LOCAL_ROOTS[0]}/app"
    response = api_client(alice).put(f"/v2/repositories/{repository.full_name}/build-source/",
                                     {"url": path, "default_branch": "main"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["trigger_url"].startswith("http://") and "/api/build/" in body["trigger_url"]
    repository.refresh_from_db()
    assert repository.is_automated and repository.source_url == f"file://{path}"
    rules = api_client(alice).get(f"/v2/repositories/{repository.full_name}/build-rules/").json()
    assert [(r["source"], r["docker_tag"]) for r in rules] == [("main", "latest")]
    again = api_client(alice).get(f"/v2/repositories/{repository.full_name}/build-source/").json()
    assert again["trigger_url"] is None  # stored hashed: shown once


def test_a_source_outside_the_allowed_roots_is_refused(build_settings, repository, alice, tmp_path):
    response = api_client(alice).put(f"/v2/repositories/{repository.full_name}/build-source/",
                                     {"url": str(tmp_path / "elsewhere")}, format="json")
    assert response.status_code == 400 and "HUB_BUILD_LOCAL_ROOTS" in str(response.json())


def test_file_url_without_roots_is_refused(settings, repository, alice):
    settings.HUB_BUILD_LOCAL_ROOTS = []
    response = api_client(alice).put(f"/v2/repositories/{repository.full_name}/build-source/",
                                     {"url": "file:///srv/git/app"}, format="json")
    assert response.status_code == 400


def test_ssh_source_gets_a_deploy_key(build_settings, repository, alice):
    response = api_client(alice).put(f"/v2/repositories/{repository.full_name}/build-source/",
                                     {"url": "git@git.example.com:team/app.git"}, format="json")
    assert response.status_code == 201 and response.json()["deploy_key"].startswith("ssh-ed25519 ")


def test_strangers_cannot_manage_builds(build_settings, repository, charlie):
    client = api_client(charlie)
    url = f"/v2/repositories/{repository.full_name}"
    assert client.put(f"{url}/build-source/", {"url": "https://x.example/a.git"}, format="json").status_code == 403
    assert client.get(f"{url}/build-rules/").status_code == 403
    assert client.get(f"{url}/builds/").status_code == 200  # a public repository's builds are public


def test_rule_secrets_are_hidden_after_saving(linked, repository, alice):
    client = api_client(alice)
    response = client.post(f"/v2/repositories/{repository.full_name}/build-rules/",
                           {"source_type": "tag", "source": r"/^v(\d+)$/", "docker_tag": r"v{\1}",
                            "secrets": {"npm_token": "hunter2"}, "build_args": {"X": "1"}}, format="json")
    assert response.status_code == 201, response.content
    assert "secrets" not in response.json() and response.json()["secret_names"] == ["npm_token"]
    rule_id = response.json()["id"]
    patched = client.patch(f"/v2/repositories/{repository.full_name}/build-rules/{rule_id}/", {"enabled": False},
                           format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    bad = client.patch(f"/v2/repositories/{repository.full_name}/build-rules/{rule_id}/",
                       {"docker_tag": r"{\5}"}, format="json")
    assert bad.status_code == 400
    assert client.delete(f"/v2/repositories/{repository.full_name}/build-rules/{rule_id}/").status_code == 204


def test_builds_list_detail_cancel_retry(linked, repository, alice):
    source, _ = linked
    [build] = builds_trigger(source=source, ref="refs/heads/main", commit="a" * 40, trigger="generic")
    client = api_client(alice)
    url = f"/v2/repositories/{repository.full_name}/builds"
    listed = client.get(f"{url}/").json()
    assert listed["count"] == 1 and listed["results"][0]["state"] == "queued"
    assert set(listed["results"][0]) >= {"id", "state", "commit", "ref", "tag", "digest", "created", "started",
                                         "finished"}
    detail = client.get(f"{url}/{build.pk}/").json()
    assert "queued" in detail["log"] and detail["log_next"] == 1
    assert client.get(f"{url}/{build.pk}/?start=1").json()["log"] == ""
    assert client.post(f"{url}/{build.pk}/retry").status_code == 400  # not finished
    cancelled = client.post(f"{url}/{build.pk}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    build.refresh_from_db()
    assert build.log_archived and "cancelled" in logs.log_text(build)
    retried = client.post(f"{url}/{build.pk}/retry")
    assert retried.status_code == 202 and retried.json()["state"] == "queued"
    started = client.post(f"{url}/", {"ref": "main"}, format="json")
    assert started.status_code == 202 and len(started.json()) == 1
    assert Build.objects.filter(repository=repository).count() == 3


def test_signing_key_is_served(client, settings):
    response = client.get("/signing-key.pub")
    assert response.status_code == 200 and response.content.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_builds_tab_pages(linked, repository, alice, client):
    source, _ = linked
    [build] = builds_trigger(source=source, ref="refs/heads/main", commit="a" * 40, trigger="generic")
    client.force_login(alice)
    page = client.get(f"/r/{repository.full_name}/builds")
    assert page.status_code == 200 and "Build rules" in page.content.decode()
    detail = client.get(f"/r/{repository.full_name}/builds/{build.pk}")
    assert detail.status_code == 200 and 'http-equiv="refresh"' in detail.content.decode()
    partial = client.get(f"/r/{repository.full_name}/builds/{build.pk}/log?start=0", HTTP_HX_REQUEST="true")
    assert "log-poller" in partial.content.decode()
