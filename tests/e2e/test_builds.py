"""Trusted builds end to end: a commit in a local Git repository (with the shipped post-commit hook)
→ a build on a real Celery worker → the image in the repository → `skopeo copy` pulls it → its cosign
signature verified here, independently of builds/signing.py, with `cryptography` and /signing-key.pub."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.live import start_hub, wait_until  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")]

REPO_ROOT = Path(__file__).resolve().parents[2]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SECRET_VALUE = "s3cret-" + uuid.uuid4().hex
BUILD_DEADLINE = 300


# --- an independent cosign "simple signing" verifier ------------------------------------------------


class NotVerified(AssertionError):
    pass


def verify_simple_signing(*, public_pem: bytes, manifest_content_type: str, manifest: dict, payload: bytes,
                          docker_reference: str, digest: str) -> dict:
    """What cosign / containers/image check (REFERENCE.md §7); returns the payload or raises NotVerified."""
    if manifest_content_type.split(";")[0].strip() != OCI_MANIFEST:
        raise NotVerified(f"signature manifest served as {manifest_content_type!r}")
    layers = [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == SIMPLE_SIGNING]
    if len(layers) != 1:
        raise NotVerified("expected exactly one simple-signing layer")
    layer = layers[0]
    if layer["digest"] != "sha256:" + hashlib.sha256(payload).hexdigest() or layer["size"] != len(payload):
        raise NotVerified("the payload does not match its descriptor")
    signature = base64.b64decode(layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, ""))
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise NotVerified("bad ECDSA signature") from None
    document = json.loads(payload)
    if set(document) != {"critical", "optional"}:
        raise NotVerified(f"payload keys {sorted(document)}")
    critical = document["critical"]
    if set(critical) != {"identity", "image", "type"} or set(critical["identity"]) != {"docker-reference"} \
            or set(critical["image"]) != {"docker-manifest-digest"}:
        raise NotVerified("critical section keys")
    if critical["type"] != "cosign container image signature":
        raise NotVerified("type")
    if critical["identity"]["docker-reference"] != docker_reference:
        raise NotVerified(f"identity {critical['identity']['docker-reference']!r}")
    if critical["image"]["docker-manifest-digest"] != digest:
        raise NotVerified("digest")
    optional = document["optional"]
    if optional is not None and not (isinstance(optional, dict) and all(isinstance(v, str) for v in optional.values())):
        raise NotVerified("optional must be null or an object of strings")
    return document


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("git-sources").resolve()


@pytest.fixture(scope="module")
def build_hub(request, local_root, artifacts_dir, django_db_setup):
    hub = start_hub(artifacts_dir, HUB_BUILDS_ENABLED="1", HUB_BUILD_LOCAL_ROOTS=str(local_root),
                    HUB_BUILD_TIMEOUT_SECONDS="240", HUB_BUILD_DISPATCH_SECONDS="2")
    yield hub
    hub.stop()


class Hub:
    def __init__(self, hub, username: str):
        self.hub, self.username = hub, username
        self.session = requests.Session()
        token = self.session.post(f"{hub.url}/v2/users/login", json={"username": username, "password": PASSWORD},
                                  timeout=10).json()["token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.hub.url}/v2/repositories/{path}", timeout=30, **kwargs)

    def wait_for_build(self, repo: str, *, count: int = 1, final: bool = True) -> list[dict]:
        def done():
            builds = self.api("GET", f"{repo}/builds/").json()["results"]
            if len(builds) < count:
                return None
            if final and builds[0]["state"] not in ("success", "failed", "cancelled", "timed_out"):
                return None
            return builds

        return wait_until(done, timeout=BUILD_DEADLINE, interval=1, message=f"a build of {repo}")


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Wharf Test", "-c", "user.email=t@example.com",
                           *args], check=True, capture_output=True, text=True, env=env).stdout


def user_with_repository(live_user, committed, clients, image, host: str, name: str):
    """A new user owning the repository <user>/<name>, with `image` pushed to <user>/base:v1 on `host`."""
    from accounts.models import Namespace
    from repositories.services import repository_create

    user = live_user()
    with committed():
        repository_create(namespace=Namespace.objects.get(user=user), name=name, user=user)
    clients.skopeo_push(image, f"{host}/{user.username}/base:v1", creds=(user.username, PASSWORD))
    return user


def link_with_hook(hub: Hub, repo: str, url: str, git_dir: Path, hooks: Path, hook: str) -> None:
    """Link `url` as `repo`'s source (branch main) and install the shipped `hook` (contrib/) in `hooks`,
    with the trigger URL in `git_dir`'s config."""
    linked = hub.api("PUT", f"{repo}/build-source/", json={"url": url, "default_branch": "main"})
    assert linked.status_code == 201, linked.text
    shutil.copy(REPO_ROOT / "contrib" / hook, hooks / hook)
    (hooks / hook).chmod(0o755)
    git(git_dir, "config", "wharf.trigger-url", linked.json()["trigger_url"])


@pytest.fixture
def project(build_hub, live_user, committed, local_root, clients_for_hub, test_images):
    """A user, a base image pushed to <user>/base:v1, a repository <user>/app linked to a local Git
    repository with the shipped post-commit hook installed."""
    user = user_with_repository(live_user, committed, clients_for_hub, test_images.small, build_hub.host, "app")
    hub = Hub(build_hub, user.username)
    source = local_root / f"src-{uuid.uuid4().hex[:8]}"
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    link_with_hook(hub, f"{user.username}/app", str(source), source, source / ".git" / "hooks", "post-commit")
    return hub, user, source, f"{user.username}/app"


@pytest.fixture
def clients_for_hub(build_hub, tmp_path) -> ContainerClients:
    return ContainerClients(tmp_path / "clients", [build_hub.host])


def fetch_signature(hub, repo: str, digest: str, creds) -> tuple[str, dict, bytes]:
    session = requests.Session()
    challenge = session.get(f"{hub.url}/v2/", timeout=10).headers["WWW-Authenticate"]
    realm = challenge.split('realm="')[1].split('"')[0]
    service = challenge.split('service="')[1].split('"')[0]
    token = session.get(realm, params={"service": service, "scope": f"repository:{repo}:pull"}, auth=creds,
                        timeout=10).json()["token"]
    session.headers["Authorization"] = f"Bearer {token}"
    tag = digest.replace(":", "-") + ".sig"
    response = session.get(f"{hub.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=10)
    if response.status_code != 200:
        raise NotVerified(f"no signature {tag}: {response.status_code}")
    manifest = response.json()
    layer = manifest["layers"][0]
    payload = session.get(f"{hub.url}/v2/{repo}/blobs/{layer['digest']}", timeout=10).content
    return response.headers["Content-Type"], manifest, payload


# --- tests --------------------------------------------------------------------------------------------


def test_commit_builds_signs_and_pulls(project, build_hub, clients_for_hub, tmp_path):
    hub, user, source, repo = project
    creds = (user.username, PASSWORD)
    rules = hub.api("GET", f"{repo}/build-rules/").json()
    secret_rule = hub.api("PATCH", f"{repo}/build-rules/{rules[0]['id']}/",
                          json={"secrets": {"wharf_token": SECRET_VALUE}, "build_args": {"GREETING": "hello"}})
    assert secret_rule.status_code == 200 and "secrets" not in secret_rule.json(), secret_rule.text
    (source / "Dockerfile").write_text(
        f"FROM {build_hub.host}/{user.username}/base:v1\n"
        "ARG GREETING\nARG SOURCE_COMMIT\n"
        "RUN --mount=type=secret,id=wharf_token "
        '[ "$(busybox sha256sum /run/secrets/wharf_token | busybox cut -c1-64)" = "'
        + hashlib.sha256(SECRET_VALUE.encode()).hexdigest() + '" ] && echo "$GREETING $SOURCE_COMMIT" > /built.txt\n')
    git(source, "add", "Dockerfile")
    git(source, "commit", "-q", "-m", "first build")
    commit = git(source, "rev-parse", "HEAD").strip()

    [build] = hub.wait_for_build(repo)
    detail = hub.api("GET", f"{repo}/builds/{build['id']}/").json()
    assert build["state"] == "success", detail["log"]
    assert build["commit"] == commit and build["tag"] == "latest" and build["ref"] == "refs/heads/main"
    assert SECRET_VALUE not in detail["log"]
    assert "were not consumed" not in detail["log"]  # only the declared built-in args (SOURCE_COMMIT) were passed

    pulled = tmp_path / "pulled"
    clients_for_hub.skopeo_pull_dir(f"{build_hub.host}/{repo}:latest", pulled, creds=creds)
    manifest_bytes = (pulled / "manifest.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    assert digest == build["digest"]
    config = clients_for_hub.skopeo_inspect(f"{build_hub.host}/{repo}:latest", config=True, creds=creds).stdout
    assert SECRET_VALUE not in config  # neither in the config nor in its history

    public_pem = requests.get(f"{build_hub.url}/signing-key.pub", timeout=10).content
    content_type, manifest, payload = fetch_signature(build_hub, repo, digest, creds)
    document = verify_simple_signing(public_pem=public_pem, manifest_content_type=content_type, manifest=manifest,
                                     payload=payload, docker_reference=f"{build_hub.host}/{repo}", digest=digest)
    assert document["optional"] == {"source": str(source), "commit": commit, "build": str(build["id"])}

    tampered = payload.replace(b'"build":"', b'"build":"9')
    with pytest.raises(NotVerified):
        verify_simple_signing(public_pem=public_pem, manifest_content_type=content_type, manifest=manifest,
                              payload=tampered, docker_reference=f"{build_hub.host}/{repo}", digest=digest)
    base_digest = json.loads(clients_for_hub.skopeo_inspect(f"{build_hub.host}/{user.username}/base:v1",
                                                            creds=creds).stdout)["Digest"]
    with pytest.raises(NotVerified):  # the base image was pushed by hand: nobody signed it
        fetch_signature(build_hub, f"{user.username}/base", base_digest, creds)

    listed = hub.api("GET", user.username + "/app/").json()
    assert listed["is_automated"] is True


def test_failing_dockerfile_fails_with_its_log(project, build_hub):
    hub, user, source, repo = project
    (source / "Dockerfile").write_text(f"FROM {build_hub.host}/{user.username}/base:v1\n"
                                       "RUN echo about-to-fail && false\n")
    git(source, "add", "Dockerfile")
    git(source, "commit", "-q", "-m", "broken")
    [build] = hub.wait_for_build(repo)
    detail = hub.api("GET", f"{repo}/builds/{build['id']}/").json()
    assert build["state"] == "failed"
    assert "about-to-fail" in detail["log"] and "buildah bud exited" in detail["log"]
    page = hub.session.get(f"{build_hub.url}/r/{repo}/builds/{build['id']}", timeout=10)
    assert page.status_code == 200 and "about-to-fail" in page.text


def test_post_receive_on_a_bare_repository(build_hub, live_user, committed, local_root, clients_for_hub, test_images,
                                           tmp_path):
    user = user_with_repository(live_user, committed, clients_for_hub, test_images.small, build_hub.host, "served")
    hub = Hub(build_hub, user.username)
    bare = local_root / f"bare-{uuid.uuid4().hex[:8]}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = f"{user.username}/served"
    link_with_hook(hub, repo, f"file://{bare}", bare, bare / "hooks", "post-receive")
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "Dockerfile").write_text(f"FROM {build_hub.host}/{user.username}/base:v1\nRUN echo served > /s.txt\n")
    git(work, "add", "Dockerfile")
    git(work, "commit", "-q", "-m", "served by a git server")
    git(work, "push", "-q", str(bare), "main")
    [build] = hub.wait_for_build(repo)
    assert build["state"] == "success", hub.api("GET", f"{repo}/builds/{build['id']}/").json()["log"]
    assert build["commit"] == git(work, "rev-parse", "HEAD").strip()
