"""Who may use mirrored names: pull only (nobody pushes), signed-in users, anonymous clients only with
HUB_MIRROR_ANONYMOUS, members of HUB_MIRROR_READERS' organizations only; a mirror prefix is a reserved
namespace; host mode maps paths, serves /v2/ and /token only, and its tokens name canonical repositories."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from accounts.models import Namespace
from accounts.names import validate_namespace_name
from registry.mirror.checks import mirror_prefixes_are_free, refuse_to_start
from registry.mirror.config import Mirror
from registry.tokens import verify_registry_token
from tests.factories import UserFactory, make_organization, team
from tests.registry.helpers import basic, bearer, token_for

pytestmark = pytest.mark.django_db
PREFIX = "dockerhub"
NAME = f"{PREFIX}/library/alpine"


@pytest.fixture(autouse=True)
def mirrors(settings, private_cache):
    settings.HUB_MIRRORS = {PREFIX: Mirror(prefix=PREFIX, url="https://registry-1.docker.io"),
                            "ghcr": Mirror(prefix="ghcr", url="https://ghcr.io")}
    settings.HUB_MIRROR_READERS = {}
    settings.HUB_MIRROR_ANONYMOUS = False
    settings.HUB_MIRROR_HOSTS = {}


def granted(client, username, scope):
    headers = {"HTTP_AUTHORIZATION": basic(username)} if username else {}
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": scope}, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def actions(client, username, scope):
    claims = verify_registry_token(granted(client, username, scope)["token"])
    return next(entry["actions"] for entry in claims.access)


def test_signed_in_users_pull_and_nobody_pushes(client, alice, staff):
    assert actions(client, alice.username, f"repository:{NAME}:pull,push,delete") == ["pull"]
    assert actions(client, staff.username, f"repository:{NAME}:pull,push,*") == ["pull"]
    assert actions(client, alice.username, "repository:ghcr/org/team/tool:pull") == ["pull"]  # any depth
    push = bearer(token_for(client, alice.username, f"repository:{NAME}:pull,push"))
    response = client.post(f"/v2/{NAME}/blobs/uploads/", **push)
    assert response.status_code == 403 and response.json()["errors"][0]["code"] == "DENIED"
    response = client.post(f"/v2/{NAME}/blobs/uploads/", HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code == 403
    response = client.put(f"/v2/{NAME}/manifests/latest", b"{}", content_type="application/json", **push)
    assert response.status_code == 403


def test_anonymous_only_when_allowed(client, settings):
    assert actions(client, None, f"repository:{NAME}:pull") == []
    response = client.get(f"/v2/{NAME}/manifests/latest")
    assert response.status_code == 401
    assert f'scope="repository:{NAME}:pull"' in response["WWW-Authenticate"]
    settings.HUB_MIRROR_ANONYMOUS = True
    assert actions(client, None, f"repository:{NAME}:pull,push") == ["pull"]


def test_readers_limit_a_prefix_to_organization_members(client, alice, bob, settings):
    organization = make_organization(alice)
    settings.HUB_MIRROR_READERS = {PREFIX: (organization.name,)}
    settings.HUB_MIRROR_ANONYMOUS = True
    assert actions(client, alice.username, f"repository:{NAME}:pull") == ["pull"]  # an owner
    assert actions(client, bob.username, f"repository:{NAME}:pull") == []
    assert actions(client, None, f"repository:{NAME}:pull") == []  # anonymous: never, with readers
    team(organization, name="devs").members.add(bob)
    assert actions(client, bob.username, f"repository:{NAME}:pull") == ["pull"]
    assert actions(client, UserFactory().username, "repository:ghcr/x/y:pull") == ["pull"]  # other prefix


def test_token_names_canonical_repositories(client, alice):
    token = token_for(client, alice.username, f"repository:{PREFIX}/alpine:pull")
    claims = verify_registry_token(token)
    assert claims.actions_for(PREFIX, "library/alpine") == {"pull"}
    assert claims.actions_for("library", "alpine") == frozenset()


def test_prefix_is_a_reserved_namespace(db):
    with pytest.raises(ValidationError, match="reserved"):
        validate_namespace_name(PREFIX)
    validate_namespace_name("dockerhub2")


def test_start_refused_when_a_prefix_is_already_a_namespace(alice, settings):
    assert mirror_prefixes_are_free() == []
    Namespace.objects.create(name=PREFIX, kind=Namespace.Kind.MIRROR)
    assert mirror_prefixes_are_free() == []  # the mirror's own namespace
    settings.HUB_MIRRORS = {**settings.HUB_MIRRORS, alice.username: Mirror(prefix=alice.username, url="https://x.io")}
    errors = mirror_prefixes_are_free()
    assert [error.id for error in errors] == ["wharf.mirror.E001"] and alice.username in errors[0].msg
    with pytest.raises(ImproperlyConfigured, match=alice.username):
        refuse_to_start()  # what every web process runs as it loads the site (hub/wsgi.py)


@pytest.mark.django_db(transaction=True)
def test_a_web_process_refuses_to_start_when_a_prefix_is_already_a_namespace(tmp_path):
    """gunicorn alone (a container, a pod) runs no system check: loading the site (hub.wsgi, what each
    gunicorn worker imports) fails, so the worker fails to boot and gunicorn stops."""
    import subprocess
    import sys

    from tests.live import REPO_ROOT, free_port, hub_environment

    Namespace.objects.create(name="takenprefix", kind=Namespace.Kind.ORGANIZATION)

    def load_the_site(mirrors: str) -> subprocess.CompletedProcess:
        env = hub_environment(free_port(), HUB_MIRRORS=mirrors)
        return subprocess.run([sys.executable, "-c", "import hub.wsgi"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    refused = load_the_site("takenprefix=https://upstream.example")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and "'takenprefix' is already the namespace" in refused.stderr
    started = load_the_site("freeprefix=https://upstream.example")
    assert started.returncode == 0, started.stderr


class TestHostMode:
    HOST = "mirror.example.test"

    @pytest.fixture(autouse=True)
    def host_mode(self, settings):
        settings.HUB_MIRROR_HOSTS = {self.HOST: PREFIX}
        settings.HUB_MIRROR_ANONYMOUS = True
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, self.HOST]

    def test_paths_map_to_the_prefix_and_challenges_speak_the_clients_names(self, client):
        response = client.get("/v2/library/alpine/manifests/latest", HTTP_HOST=f"{self.HOST}:5000")
        assert response.status_code == 401
        challenge = response["WWW-Authenticate"]
        assert f'realm="http://{self.HOST}:5000/token"' in challenge
        assert 'scope="repository:library/alpine:pull"' in challenge
        assert client.get("/v2/", HTTP_HOST=self.HOST).status_code in (200, 401)

    def test_only_v2_and_token(self, client):
        for path in ("/", "/explore", "/accounts/login/", "/v2/_catalog", "/api/schema/"):
            assert client.get(path, HTTP_HOST=self.HOST).status_code == 404, path
        assert client.get("/explore").status_code == 200  # the main host is untouched

    def test_mirror_host_tokens_never_grant_the_main_hosts_names(self, client, alice):
        response = client.get("/token", {"service": "127.0.0.1:8000", "scope": "repository:library/alpine:pull"},
                              HTTP_HOST=self.HOST, HTTP_AUTHORIZATION=basic(alice.username))
        assert response.status_code == 200
        claims = verify_registry_token(response.json()["token"])
        assert claims.actions_for(PREFIX, "library/alpine") == {"pull"}
        assert claims.actions_for("library", "alpine") == frozenset()
        assert [entry["name"] for entry in claims.access] == [NAME]
