"""Attacks on the pull-through cache (issue 22), each proved or disproved by one test.

A hostile tenant tries to read another tenant's private layers through a mirror name, to push into
mirror names, to register a mirror prefix, to carry a token between the mirror host and the main host,
to walk out of a mirror name with path tricks, to reach the site's pages through the mirror host, to pull
a mirror limited to some organizations, and a hostile upstream tries to leak the mirror's credentials,
to send endless bytes, to redirect Wharf to loopback or a metadata address, or to poison another
prefix's cache. The upstreams are FakeUpstream (tests/registry/mirror/mirror_fakes.py) or, where the
real client matters, the scripted HTTP server of tests/registry/mirror/upstreams.py.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
from django.test import Client

from accounts.models import Namespace, Organization
from accounts.org_tokens import org_access_token_create
from registry.mirror import service
from registry.mirror.config import Mirror
from registry.mirror.upstream import BLOB_CHUNK, UpstreamError, UpstreamUnavailable
from registry.models import Blob, BlobUpload, Manifest, ManifestBlob, RepositoryBlob, Tag
from registry.tokens import verify_registry_token
from repositories.models import Repository
from tests.conftest import PASSWORD
from tests.factories import UserFactory, make_organization, team
from tests.registry.helpers import (
    OCI_MANIFEST,
    basic,
    bearer,
    config_blob,
    digest_of,
    image_manifest,
    push_blob,
    push_manifest,
    token_for,
)
from tests.registry.mirror.mirror_fakes import PREFIX, FakeUpstream
from tests.registry.mirror.upstreams import Scripted, reply

pytestmark = pytest.mark.django_db
NAME = f"{PREFIX}/library/alpine"
HOST = "mirror.example.test"
ACCEPT = {"HTTP_ACCEPT": "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"}
SECRET_LAYER = b"alice's private layer: the database password is in here"


@pytest.fixture
def upstream(settings, private_cache):
    """Two mirrors: `dockerhub` (Docker Hub) and `ghcr`, each with its own fake upstream."""
    settings.HUB_MIRRORS = {PREFIX: Mirror(prefix=PREFIX, url="https://registry-1.docker.io"),
                            "ghcr": Mirror(prefix="ghcr", url="https://ghcr.io")}
    settings.HUB_MIRROR_READERS = {}
    settings.HUB_MIRROR_ANONYMOUS = False
    settings.HUB_MIRROR_HOSTS = {}
    settings.HUB_MIRROR_TTL_SECONDS = 300
    fakes = {PREFIX: FakeUpstream(), "ghcr": FakeUpstream()}
    service._clients.update(fakes)
    yield fakes[PREFIX]
    for prefix in fakes:
        service._clients.pop(prefix, None)


@pytest.fixture
def ghcr(upstream):
    return service._clients["ghcr"]


@pytest.fixture
def secret_pushed(client, alice, alice_private):
    """alice/secret holds SECRET_LAYER and a manifest naming it."""
    token = token_for(client, alice.username, f"repository:{alice.username}/secret:pull,push")
    config = config_blob(salt="secret")
    push_blob(client, f"{alice.username}/secret", config, token)
    push_blob(client, f"{alice.username}/secret", SECRET_LAYER, token)
    body = image_manifest(config, [SECRET_LAYER])
    push_manifest(client, f"{alice.username}/secret", "latest", body, token)
    return body


def pull(client, user, name=NAME):
    return bearer(token_for(client, user.username, f"repository:{name}:pull"))


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def mirror_repository() -> Repository:
    return Repository.objects.get(namespace__name=PREFIX, name="library/alpine")


# --- The shared blob store never answers for a mirror name ------------------------------------------


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_private_layer_is_not_served_under_a_mirror_name(client, charlie, upstream, secret_pushed, method):
    upstream.add_image("library/alpine", "latest")
    auth = pull(client, charlie)
    assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
    response = getattr(client, method)(f"/v2/{NAME}/blobs/{digest_of(SECRET_LAYER)}", **auth)
    assert response.status_code == 404, response.status_code
    if method == "get":
        assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert SECRET_LAYER not in body_of(response)
    # No manifest of the mirrored repository names it: not even the upstream is asked (a GET or a HEAD).
    assert [call for call in upstream.calls if call[2] == digest_of(SECRET_LAYER)] == []
    assert not RepositoryBlob.objects.filter(repository=mirror_repository(),
                                             blob__digest=digest_of(SECRET_LAYER)).exists()


def test_a_mirror_name_not_yet_fetched_does_not_reach_the_store(client, charlie, upstream, secret_pushed):
    """No mirrored repository yet: NAME_UNKNOWN, and nothing asked upstream for a blob of nothing."""
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(SECRET_LAYER)}", **pull(client, charlie))
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert SECRET_LAYER not in body_of(response)
    assert upstream.count("blob") == 0


def test_the_same_bytes_from_the_upstream_are_fetched_verified_and_linked(client, charlie, upstream, secret_pushed):
    """If the upstream really has those bytes, serving them under the mirror name leaks nothing."""
    upstream.add_image("library/alpine", "latest", layers=(SECRET_LAYER,))
    auth = pull(client, charlie)
    client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(SECRET_LAYER)}", **auth)
    assert response.status_code == 200 and body_of(response) == SECRET_LAYER
    assert response["X-Wharf-Mirror"] == "miss"  # the upstream's bytes, not the store's
    assert upstream.count("blob") == 1
    assert Blob.objects.filter(digest=digest_of(SECRET_LAYER)).count() == 1


def test_a_manifest_naming_a_blob_the_upstream_lacks_links_nothing_local(client, charlie, upstream, secret_pushed):
    """A hostile upstream serves a manifest naming alice's private layer, which it does not have."""
    config = config_blob(salt="hostile")
    body = image_manifest(config, [SECRET_LAYER])
    upstream.manifests[("library/alpine", "latest")] = (body, OCI_MANIFEST)
    upstream.blobs[("library/alpine", digest_of(config))] = config  # the config only
    auth = pull(client, charlie)
    response = client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    assert response.status_code == 200 and response.content == body
    manifest = Manifest.objects.get(repository=mirror_repository(), digest=digest_of(body))
    assert not ManifestBlob.objects.filter(manifest=manifest, blob__digest=digest_of(SECRET_LAYER)).exists()
    for method in ("get", "head"):
        response = getattr(client, method)(f"/v2/{NAME}/blobs/{digest_of(SECRET_LAYER)}", **auth)
        assert response.status_code == 404, (method, response.status_code)
        assert SECRET_LAYER not in body_of(response)


# --- Nobody pushes, deletes or mounts into a mirror name ---------------------------------------------


@pytest.mark.parametrize("who", ["user", "staff", "superuser"])
@pytest.mark.parametrize("door", ["bearer", "basic"])
def test_nobody_writes_into_a_mirror_name(client, upstream, alice, secret_pushed, who, door):
    upstream.add_image("library/alpine", "latest", layers=(b"upstream layer",))
    user = {"user": alice, "staff": UserFactory(is_staff=True),
            "superuser": UserFactory(is_staff=True, is_superuser=True)}[who]
    reader = pull(client, user)
    client.get(f"/v2/{NAME}/manifests/latest", **reader, **ACCEPT)  # the mirrored repository exists
    client.get(f"/v2/{NAME}/blobs/{digest_of(b'upstream layer')}", **reader)
    repository = mirror_repository()
    before = (Manifest.objects.filter(repository=repository).count(), Tag.objects.filter(repository=repository).count(),
              RepositoryBlob.objects.filter(repository=repository).count())
    if door == "bearer":
        auth = bearer(token_for(client, user.username, f"repository:{NAME}:pull,push,delete,*",
                                f"repository:{alice.username}/secret:pull"))
    else:
        auth = {"HTTP_AUTHORIZATION": basic(user.username)}
    mine = image_manifest(config_blob(salt="mine"), [b"upstream layer"])
    tried = [
        client.post(f"/v2/{NAME}/blobs/uploads/", **auth),
        client.post(f"/v2/{NAME}/blobs/uploads/?digest={digest_of(b'evil')}", data=b"evil",
                    content_type="application/octet-stream", **auth),
        client.post(f"/v2/{NAME}/blobs/uploads/?mount={digest_of(SECRET_LAYER)}&from={alice.username}/secret",
                    **auth),
        client.put(f"/v2/{NAME}/manifests/latest", data=mine, content_type=OCI_MANIFEST, **auth),
        client.put(f"/v2/{NAME}/manifests/{digest_of(mine)}", data=mine, content_type=OCI_MANIFEST, **auth),
        client.delete(f"/v2/{NAME}/manifests/latest", **auth),
        client.delete(f"/v2/{NAME}/blobs/{digest_of(b'upstream layer')}", **auth),
        client.patch(f"/v2/{NAME}/blobs/uploads/00000000-0000-0000-0000-000000000000", data=b"x",
                     content_type="application/octet-stream", **auth),
    ]
    assert [r.status_code for r in tried] == [r.status_code for r in tried if r.status_code in (401, 403)], \
        [(r.wsgi_request.method, r.wsgi_request.get_full_path(), r.status_code) for r in tried]
    after = (Manifest.objects.filter(repository=repository).count(), Tag.objects.filter(repository=repository).count(),
             RepositoryBlob.objects.filter(repository=repository).count())
    assert after == before
    assert not BlobUpload.objects.filter(repository__namespace__name=PREFIX).exists()
    assert not RepositoryBlob.objects.filter(repository__namespace__name=PREFIX,
                                             blob__digest=digest_of(SECRET_LAYER)).exists()
    assert not Blob.objects.filter(digest=digest_of(b"evil")).exists()


def test_nobody_creates_a_repository_in_a_mirror_namespace_through_the_hub_api(client, upstream, staff):
    from tests.api.conftest import auth as api_auth

    upstream.add_image("library/alpine", "latest")
    client.get(f"/v2/{NAME}/manifests/latest", **pull(client, staff), **ACCEPT)  # the namespace exists now
    assert Namespace.objects.filter(name=PREFIX, kind=Namespace.Kind.MIRROR).exists()
    response = client.post("/v2/repositories/", {"namespace": PREFIX, "name": "planted", "is_private": False},
                           content_type="application/json", **api_auth(staff))
    assert response.status_code in (400, 403, 404), response.content
    assert not Repository.objects.filter(namespace__name=PREFIX, name="planted").exists()


# --- A mirror prefix is nobody's namespace ------------------------------------------------------------


@pytest.mark.parametrize("name", [PREFIX, "DockerHub", "DOCKERHUB", "ghcr"])
def test_a_prefix_cannot_be_signed_up_for(client, upstream, name):
    response = client.post("/accounts/signup/", {"username": name, "email": f"x{name.lower()}@example.test",
                                                 "password1": PASSWORD + "x", "password2": PASSWORD + "x"})
    assert response.status_code == 200, response.status_code  # the form again, with its error
    assert not Namespace.objects.filter(name__iexact=name).exclude(kind=Namespace.Kind.MIRROR).exists()


@pytest.mark.parametrize("name", [PREFIX, "DockerHub", "ghcr"])
def test_a_prefix_cannot_be_an_organization(client, upstream, alice, name):
    from tests.api.conftest import auth as api_auth

    client.force_login(alice)
    response = client.post("/orgs/new", {"name": name})
    assert response.status_code == 200  # the form again, with its error
    for field in ("orgname", "name"):
        response = client.post("/v2/orgs/", {field: name}, content_type="application/json", **api_auth(alice))
        assert response.status_code == 400, response.content
    assert not Organization.objects.filter(name__iexact=name).exists()
    assert not Namespace.objects.filter(name__iexact=name).exclude(kind=Namespace.Kind.MIRROR).exists()


# --- Tokens name canonical repositories ---------------------------------------------------------------


@pytest.fixture
def host_mode(settings, upstream):
    settings.HUB_MIRROR_HOSTS = {HOST: PREFIX}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


def test_a_mirror_host_token_opens_nothing_on_the_main_host(host_mode, charlie, alice, secret_pushed):
    client = Client()
    scope = f"repository:{alice.username}/secret:pull"
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": scope}, HTTP_HOST=HOST,
                          HTTP_AUTHORIZATION=basic(charlie.username))
    assert response.status_code == 200
    token = response.json()["token"]
    claims = verify_registry_token(token)
    assert [(entry["name"], entry["actions"]) for entry in claims.access] == [(f"{PREFIX}/{alice.username}/secret",
                                                                              ["pull"])]
    assert claims.actions_for(alice.username, "secret") == frozenset()
    response = client.get(f"/v2/{alice.username}/secret/manifests/latest", **bearer(token), **ACCEPT)
    assert response.status_code == 401 and response.content != secret_pushed
    response = client.get(f"/v2/{alice.username}/secret/blobs/{digest_of(SECRET_LAYER)}", **bearer(token))
    assert response.status_code in (401, 404) and SECRET_LAYER not in body_of(response)


def test_a_staff_mirror_host_token_cannot_push_the_main_hosts_official_image(host_mode, upstream):
    staff = UserFactory(is_staff=True)
    client = Client()
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": "repository:library/alpine:pull,push"},
                          HTTP_HOST=HOST, HTTP_AUTHORIZATION=basic(staff.username))
    token = response.json()["token"]
    response = client.post("/v2/library/alpine/blobs/uploads/", **bearer(token))
    assert response.status_code in (401, 403), response.content
    assert not Repository.objects.filter(namespace__name="library", name="alpine").exists()


def test_a_mirror_name_token_does_not_grant_the_local_name(client, charlie, alice, upstream, secret_pushed):
    token = token_for(client, charlie.username, f"repository:{PREFIX}/{alice.username}/secret:pull")
    response = client.get(f"/v2/{alice.username}/secret/manifests/latest", **bearer(token), **ACCEPT)
    assert response.status_code == 401 and response.content != secret_pushed


def test_a_main_host_token_does_not_reach_the_mirror_through_the_mirror_host(host_mode, alice, upstream,
                                                                             secret_pushed):
    """alice may pull alice/secret; on the mirror host the same path is the upstream's alice/secret."""
    client = Client()
    token = token_for(client, alice.username, f"repository:{alice.username}/secret:pull")
    response = client.get(f"/v2/{alice.username}/secret/manifests/latest", HTTP_HOST=HOST, **bearer(token), **ACCEPT)
    assert response.status_code == 401 and response.content != secret_pushed
    assert upstream.calls == []


# --- Path tricks --------------------------------------------------------------------------------------


TRICKS = [
    f"{PREFIX}/../{{owner}}/secret",
    f"{PREFIX}/%2e%2e/{{owner}}/secret",
    f"{PREFIX}%2F..%2F{{owner}}%2Fsecret",
    f"{PREFIX}/./{{owner}}/secret",
    f"{PREFIX}//{{owner}}/secret",
    f"{PREFIX}/{{owner}}//secret",
    f"{PREFIX.upper()}/{{owner}}/secret",
    f"{PREFIX}",
    f"{PREFIX}/",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_path_tricks_reach_neither_the_tenant_nor_the_upstream(client, charlie, alice, upstream, secret_pushed,
                                                               trick):
    """A stranger who may pull mirrors writes names that might be read as alice/secret; with a token
    asked for that very name, and with Basic credentials."""
    name = trick.format(owner=alice.username)
    upstream.add_image(f"{alice.username}/secret", "latest")  # the upstream has a namesake: not asked either
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": f"repository:{name}:pull"},
                          HTTP_AUTHORIZATION=basic(charlie.username))
    doors = [{"HTTP_AUTHORIZATION": basic(charlie.username)}]
    if response.status_code == 200:
        doors.append(bearer(response.json()["token"]))
    for auth in doors:
        for path in (f"/v2/{name}/manifests/latest", f"/v2/{name}/blobs/{digest_of(SECRET_LAYER)}"):
            response = client.get(path, **auth, **ACCEPT)
            assert response.status_code in (400, 401, 404), (path, response.status_code)
            data = body_of(response)
            assert data != secret_pushed and SECRET_LAYER not in data
    assert [call for call in upstream.calls if call[1] != "library/alpine"] == []


@pytest.mark.parametrize("path", [
    "/v2/../{owner}/secret/manifests/latest",
    "/v2/%2e%2e/{owner}/secret/manifests/latest",
    "/v2//{owner}/secret/manifests/latest",
    "/v2/{owner}/secret/../../{owner}/secret/manifests/latest",
])
def test_path_tricks_on_the_mirror_host(host_mode, charlie, alice, upstream, secret_pushed, path):
    client = Client()
    path = path.format(owner=alice.username)
    for auth in ({"HTTP_AUTHORIZATION": basic(charlie.username)}, {"HTTP_AUTHORIZATION": basic(alice.username)}):
        response = client.get(path, HTTP_HOST=HOST, **auth, **ACCEPT)
        assert response.status_code in (400, 401, 404), (path, response.status_code)
        assert response.content != secret_pushed
    assert upstream.calls == []


# --- The mirror host is the registry only -------------------------------------------------------------


@pytest.mark.parametrize("host", [HOST, f"{HOST}:5000", f"{HOST}.", HOST.upper(), f"{HOST.upper()}.:443"])
@pytest.mark.parametrize("path", ["/", "/explore", "/accounts/login/", "/admin/login/", "/settings/tokens",
                                  "/search", "/api/docs/", "/static/css/wharf.css", "/v1/search",
                                  "/accounts/oidc/acme-sso/login/", "/orgs/new"])
def test_the_mirror_host_serves_no_page_whatever_its_spelling(host_mode, alice, host, path):
    client = Client()
    client.force_login(alice)
    response = client.get(path, HTTP_HOST=host, HTTP_X_FORWARDED_HOST="testserver")
    assert response.status_code == 404, (host, path, response.status_code)


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/v2/users/login"), ("get", "/v2/repositories/{owner}/"), ("get", "/v2/orgs/"),
    ("get", "/v2/_catalog"), ("get", "/v2/search/repositories?query=secret"),
])
def test_the_hub_api_is_not_on_the_mirror_host(host_mode, alice, alice_private, method, path):
    client = Client()
    response = getattr(client, method)(path.format(owner=alice.username), HTTP_HOST=HOST,
                                       HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code in (401, 404), (path, response.status_code)
    assert b"secret" not in response.content and b"token" not in response.content.lower()


def test_x_forwarded_host_does_not_make_the_main_host_a_mirror(host_mode, alice, upstream):
    client = Client()
    client.force_login(alice)
    assert client.get("/explore", HTTP_X_FORWARDED_HOST=HOST).status_code == 200
    response = client.get("/v2/library/alpine/manifests/latest", HTTP_X_FORWARDED_HOST=HOST,
                          HTTP_AUTHORIZATION=basic(alice.username), **ACCEPT)
    assert response.status_code in (401, 404)
    assert upstream.calls == []


# --- HUB_MIRROR_READERS ------------------------------------------------------------------------------


@pytest.fixture
def readers(settings, upstream, alice):
    organization = make_organization(alice)
    settings.HUB_MIRROR_READERS = {PREFIX: (organization.name,)}
    settings.HUB_MIRROR_ANONYMOUS = True
    upstream.add_image("library/alpine", "latest", layers=(b"readers layer",))
    auth = pull(Client(), alice)
    Client().get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    Client().get(f"/v2/{NAME}/blobs/{digest_of(b'readers layer')}", **auth)
    upstream.calls.clear()
    return organization


def _refused(response):
    return response.status_code in (401, 403, 404) and b"readers layer" not in body_of(response)


def test_readers_refuse_a_stranger_at_every_door(client, readers, charlie, upstream):
    token = token_for(client, charlie.username, f"repository:{NAME}:pull")
    for auth in (bearer(token), {"HTTP_AUTHORIZATION": basic(charlie.username)}, {}):
        assert _refused(client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT))
        assert _refused(client.get(f"/v2/{NAME}/manifests/edge", **auth, **ACCEPT))  # a miss: nothing fetched
        assert _refused(client.get(f"/v2/{NAME}/blobs/{digest_of(b'readers layer')}", **auth))
    assert upstream.calls == []


def test_readers_refuse_a_mount_from_the_mirror_into_ones_own_repository(client, readers, charlie):
    auth = {"HTTP_AUTHORIZATION": basic(charlie.username)}
    response = client.post(f"/v2/{charlie.username}/loot/blobs/uploads/?mount={digest_of(b'readers layer')}"
                           f"&from={NAME}", **auth)
    assert response.status_code == 202  # an upload starts instead: nothing was mounted
    assert not RepositoryBlob.objects.filter(repository__namespace__name=charlie.username).exists()


def test_readers_refuse_another_organizations_token(client, readers, charlie, upstream):
    other = make_organization(charlie)
    _, secret = org_access_token_create(organization=other, created_by=charlie, label="ci",
                                        resources=[{"type": "TYPE_REPO", "path": f"{other.name}/*",
                                                    "scopes": ["scope-image-pull"]}])
    response = client.get("/token", {"service": "127.0.0.1:8000", "scope": f"repository:{NAME}:pull"},
                          HTTP_AUTHORIZATION=basic(other.name, secret))
    assert response.status_code == 200
    assert [entry["actions"] for entry in response.json().get("access", [])] in ([], [[]])
    token = response.json()["token"]
    assert _refused(client.get(f"/v2/{NAME}/manifests/latest", **bearer(token), **ACCEPT))
    assert _refused(client.get(f"/v2/{NAME}/manifests/latest", HTTP_AUTHORIZATION=basic(other.name, secret),
                               **ACCEPT))
    assert upstream.calls == []


def test_readers_let_a_member_of_any_team_pull_and_hide_the_mirror_from_others(client, readers, charlie):
    client.force_login(charlie)
    assert "mirror of" not in client.get("/search", {"q": "alpine"}).content.decode()
    team(readers, name="devs").members.add(charlie)
    assert "mirror of docker.io/library/alpine" in client.get("/search", {"q": "alpine"}).content.decode()
    response = client.get(f"/v2/{NAME}/manifests/latest", HTTP_AUTHORIZATION=basic(charlie.username), **ACCEPT)
    assert response.status_code == 200


# --- A hostile upstream (the real client against a scripted server) ----------------------------------

UPSTREAM_USER, UPSTREAM_PASSWORD = "mirrorbot", "Upstr3am-Pa55word-never-shown"


@pytest.fixture
def scripted(settings, private_cache):
    server = Scripted()
    settings.HUB_MIRRORS = {PREFIX: Mirror(prefix=PREFIX, url=server.url, username=UPSTREAM_USER,
                                           password=UPSTREAM_PASSWORD)}
    settings.HUB_MIRROR_READERS = {}
    settings.HUB_MIRROR_ANONYMOUS = False
    settings.HUB_MIRROR_HOSTS = {}
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = []
    service._clients.pop(PREFIX, None)
    yield server
    client = service._clients.pop(PREFIX, None)
    if client is not None:
        client.close()
    server.close()


def _secrets() -> list[bytes]:
    pair = f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}".encode()
    return [UPSTREAM_PASSWORD.encode(), base64.b64encode(pair), pair]


def test_upstream_credentials_never_reach_a_client_or_the_log(client, alice, scripted, caplog):
    """The upstream asks for Basic credentials, then refuses them, echoing them in its error body; then
    fails in other ways. Nothing a client or the log sees holds them."""
    answers = iter([
        lambda h: reply(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="upstream"'}),
        lambda h: reply(h, 403, json.dumps({"errors": [{"code": "DENIED", "message": h.headers.get("Authorization"),
                                                        "detail": h.headers.get("Authorization")}]}).encode()),
    ])

    def script(h):
        try:
            next(answers)(h)
        except StopIteration:
            reply(h, 500, f"oops {h.headers.get('Authorization')}".encode())

    scripted.script = script
    auth = pull(client, alice)
    caplog.set_level(logging.DEBUG)
    seen = []
    for reference in ("latest", "edge", "v1"):
        response = client.get(f"/v2/{NAME}/manifests/{reference}", **auth, **ACCEPT)
        assert response.status_code in (404, 503), response.content
        seen.append(response.content + str(response.headers).encode())
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(b'x')}", **auth)
    seen.append(body_of(response) + str(response.headers).encode())
    assert any(r.headers.get("Authorization", "").startswith("Basic ") for r in scripted.requests)  # it was sent
    client.force_login(alice)
    seen.append(client.get("/search", {"q": "alpine"}).content)
    seen.append(client.get("/explore").content)
    seen.append(repr(service.client_for(PREFIX)).encode() + repr(service.client_for(PREFIX).mirror).encode())
    everything = b"\n".join(seen) + caplog.text.encode()
    for secret in _secrets():
        assert secret not in everything, secret


def test_the_clients_authorization_is_never_forwarded_upstream(client, alice, scripted, settings):
    """A client pulling with its Basic credentials or its registry token: the upstream, which asks for no
    authentication here, gets no Authorization header at all, and nothing of the client's anywhere."""
    settings.HUB_MIRROR_TTL_SECONDS = 0  # every manifest request of either door asks the upstream
    blob = b"a layer pulled with the client's own credentials"
    _serve_image_with_blob(scripted, blob)
    token = token_for(client, alice.username, f"repository:{NAME}:pull")
    doors = [bearer(token), {"HTTP_AUTHORIZATION": basic(alice.username)}]
    for auth in doors:
        asked = len(scripted.requests)
        response = client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
        assert response.status_code == 200, response.content
        assert len(scripted.requests) > asked
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(blob)}", **doors[0])
    assert body_of(response) == blob and response["X-Wharf-Mirror"] == "miss"
    assert scripted.requests, "the upstream was asked"
    secrets = [token, basic(alice.username).split()[1], PASSWORD]
    for seen in scripted.requests:
        assert "authorization" not in {name.lower() for name in seen.headers}, seen
        assert not any(secret in value for value in seen.headers.values() for secret in secrets), seen


def test_an_oversized_manifest_is_refused_and_stores_nothing(client, alice, scripted):
    from registry.mirror.upstream import MAX_MANIFEST_BYTES

    huge = b'{"schemaVersion": 2, "pad": "' + b"a" * MAX_MANIFEST_BYTES + b'"}'
    scripted.script = lambda h: reply(h, 200, huge, {"Content-Type": OCI_MANIFEST})
    response = client.get(f"/v2/{NAME}/manifests/latest", **pull(client, alice), **ACCEPT)
    assert response.status_code == 503 and "larger" in response.json()["errors"][0]["message"]
    assert not Manifest.objects.filter(repository__namespace__name=PREFIX).exists()


def _serve_image_with_blob(scripted, blob: bytes, *, blob_reply=None):
    config = config_blob(salt="big")
    body = image_manifest(config, [blob])

    def script(h):
        if "/manifests/" in h.path:
            return reply(h, 200, body, {"Content-Type": OCI_MANIFEST})
        if h.path.endswith(digest_of(config)):
            return reply(h, 200, config)
        return (blob_reply or (lambda h: reply(h, 200, blob)))(h)

    scripted.script = script
    return body


def test_a_blob_over_the_sites_blob_size_limit_is_not_fetched(client, alice, scripted, settings):
    """HUB_MAX_BLOB_BYTES bounds what a push may store; an upstream must not store more through the mirror."""
    settings.HUB_MAX_BLOB_BYTES = 4096
    big = b"B" * 10_000
    _serve_image_with_blob(scripted, big)
    auth = pull(client, alice)
    assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(big)}", **auth)
    assert response.status_code == 503 and "larger than 4096 bytes" in response.json()["errors"][0]["message"]
    assert not Blob.objects.filter(digest=digest_of(big)).exists()


def test_an_endless_blob_is_cut_at_the_limit(client, alice, scripted, settings):
    """No Content-Length, chunked bytes that never end (here: far more than the limit)."""
    settings.HUB_MAX_BLOB_BYTES = 64 * 1024
    claimed = b"endless"

    def endless(h):
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"E" * 16384
        try:
            for _ in range(512):  # 8 MiB, 128 times the limit
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        h.close_connection = True

    _serve_image_with_blob(scripted, claimed, blob_reply=endless)
    auth = pull(client, alice)
    assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(claimed)}", **auth)
    received = 0
    with pytest.raises(UpstreamError, match="larger"):
        for chunk in response.streaming_content:
            received += len(chunk)
    assert received <= settings.HUB_MAX_BLOB_BYTES + BLOB_CHUNK  # at most one read past the limit
    assert not Blob.objects.filter(digest=digest_of(claimed)).exists()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:{port}/x",
                                    "http://localhost:{port}/x", "http://[::1]:{port}/x", "http://0.0.0.0:{port}/x"])
def test_upstream_redirects_to_internal_addresses_are_refused(client, alice, scripted, target):
    inside = Scripted()
    try:
        inside.script = lambda h: reply(h, 200, b"internal secret")
        location = target.format(port=inside.port)
        blob = b"layer"
        _serve_image_with_blob(scripted, blob, blob_reply=lambda h: reply(h, 307, b"", {"Location": location}))
        auth = pull(client, alice)
        assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
        response = client.get(f"/v2/{NAME}/blobs/{digest_of(blob)}", **auth)
        assert response.status_code in (502, 503), response.status_code
        assert b"internal secret" not in body_of(response)
        assert inside.requests == []
    finally:
        inside.close()


def test_an_upstream_token_realm_on_an_internal_address_is_refused(client, alice, scripted):
    inside = Scripted()
    try:
        inside.script = lambda h: reply(h, 200, b'{"token": "stolen"}')
        scripted.script = lambda h: reply(h, 401, b"{}", {
            "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{inside.port}/token",service="x"'})
        response = client.get(f"/v2/{NAME}/manifests/latest", **pull(client, alice), **ACCEPT)
        assert response.status_code == 503, response.status_code
        assert inside.requests == []  # neither a request nor the mirror's credentials went there
    finally:
        inside.close()


# --- One prefix's cache never answers for another ----------------------------------------------------


def test_a_failing_upstream_never_serves_another_prefixs_cache(client, alice, upstream, ghcr, settings):
    theirs = ghcr.add_image("library/alpine", "latest", layers=(b"ghcr layer",))
    auth = bearer(token_for(client, alice.username, "repository:ghcr/library/alpine:pull", f"repository:{NAME}:pull"))
    assert client.get("/v2/ghcr/library/alpine/manifests/latest", **auth, **ACCEPT).content == theirs
    client.get(f"/v2/ghcr/library/alpine/blobs/{digest_of(b'ghcr layer')}", **auth)

    upstream.fail = UpstreamUnavailable("down")
    response = client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    assert response.status_code == 503 and response.content != theirs
    response = client.get(f"/v2/{NAME}/manifests/{digest_of(theirs)}", **auth, **ACCEPT)
    assert response.status_code == 503 and response.content != theirs

    upstream.fail = None  # up, with an image of its own that does not hold ghcr's layer
    ours = upstream.add_image("library/alpine", "latest", layers=(b"dockerhub layer",))
    settings.HUB_MIRROR_TTL_SECONDS = 0
    assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).content == ours
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(b'ghcr layer')}", **auth)
    assert response.status_code == 404 and b"ghcr layer" not in body_of(response)

    upstream.fail = UpstreamUnavailable("down again")  # stale: its own cache, never ghcr's
    response = client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    assert response.status_code == 200 and response.content == ours and response["X-Wharf-Mirror"] == "stale"


def test_a_tag_that_moved_upstream_is_served_as_it_is_now(client, alice, upstream, settings):
    upstream.add_image("library/alpine", "latest", salt="before")
    auth = pull(client, alice)
    client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    now = upstream.add_image("library/alpine", "latest", salt="after")
    settings.HUB_MIRROR_TTL_SECONDS = 0
    response = client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT)
    assert response.content == now and response["Docker-Content-Digest"] == digest_of(now)


def test_a_redirect_target_cannot_collect_the_mirrors_credentials(client, alice, scripted, settings):
    settings.HUB_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the CDN and its realm pass the address rules
    service._clients.pop(PREFIX, None)
    cdn, collector = Scripted(), Scripted()
    try:
        collector.script = lambda h: reply(h, 200, b'{"token": "t"}')
        cdn.script = lambda h: reply(h, 401, b"{}", {
            "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{collector.port}/token",service="cdn"'})
        blob = b"layer"
        _serve_image_with_blob(scripted, blob, blob_reply=lambda h: reply(
            h, 307, b"", {"Location": f"http://127.0.0.1:{cdn.port}/blob"}))
        auth = pull(client, alice)
        assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
        response = client.get(f"/v2/{NAME}/blobs/{digest_of(blob)}", **auth)
        sent = [r.headers.get("Authorization", "") for r in collector.requests]
        assert not any(base64.b64encode(f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}".encode()).decode() in value
                       for value in sent), sent
        assert collector.requests == []  # the CDN's realm is never asked, with or without credentials
        assert len(cdn.requests) == 1 and "Authorization" not in cdn.requests[0].headers
        assert response.status_code == 404 and b"layer" not in body_of(response)
        assert not Blob.objects.filter(digest=digest_of(blob)).exists()
    finally:
        cdn.close()
        collector.close()


def test_the_upstreams_own_challenge_after_a_same_host_redirect_is_answered(client, alice, scripted):
    """A redirect on the upstream's own origin that asks for a token is still the upstream asking: the
    realm it names gets the credentials, and the blob arrives (the fix above refuses foreign hosts only)."""
    realm = scripted.url + "/token"
    pair = base64.b64encode(f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}".encode()).decode()
    blob = b"same host layer"
    config = config_blob(salt="same host")
    body = image_manifest(config, [blob])

    def script(h):
        if h.path.startswith("/token"):
            if h.headers.get("Authorization") != f"Basic {pair}":
                return reply(h, 401, b"{}")
            return reply(h, 200, b'{"token": "good"}')
        if h.headers.get("Authorization") != "Bearer good":
            return reply(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="up"'})
        if "/manifests/" in h.path:
            return reply(h, 200, body, {"Content-Type": OCI_MANIFEST})
        if h.path.endswith(digest_of(blob)):
            return reply(h, 307, b"", {"Location": "/storage/blob"})
        if h.path == "/storage/blob":
            return reply(h, 200, blob)
        return reply(h, 200, config)

    scripted.script = script
    auth = pull(client, alice)
    assert client.get(f"/v2/{NAME}/manifests/latest", **auth, **ACCEPT).status_code == 200
    response = client.get(f"/v2/{NAME}/blobs/{digest_of(blob)}", **auth)
    assert response.status_code == 200 and body_of(response) == blob
