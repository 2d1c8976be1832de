"""Real skopeo, podman, buildah and oras-py pushing to and pulling from the target registry.

WHARF_E2E_TARGET=reference runs these against Debian's docker-registry (hub-only tests skip); the
default target is our gunicorn, skipped while `GET /v2/` answers 404.
"""

import hashlib
import json

import pytest

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.e2e.clients import Account, ClientResult, ContainerClients, Target, unique  # noqa: E402
from tests.e2e.images import OciImage  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("target")]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = {"v2s2": DOCKER_MANIFEST, "oci": OCI_MANIFEST}
LIST_TYPE = {"v2s2": DOCKER_LIST, "oci": OCI_INDEX}
ROOT_REFUSAL = 'You cannot push a "root" repository'


def push(clients: ContainerClients, target: Target, account: Account, image: OciImage, *, repo: str | None = None,
         tag: str = "latest", format: str = "oci") -> str:
    """skopeo-push `image` to a fresh repository of `account` (or `repo`); returns the repository."""
    repo = repo or target.repo(account)
    clients.skopeo_push(image, target.ref(repo, tag), format=format, creds=account.creds)
    return repo


def raw_manifest(clients: ContainerClients, ref: str, creds=None) -> tuple[dict, str]:
    result = clients.skopeo_inspect(ref, raw=True, creds=creds)
    return json.loads(result.stdout), "sha256:" + hashlib.sha256(result.stdout.encode()).hexdigest()


def pushed_diff_ids(clients: ContainerClients, ref: str, creds) -> list[str]:
    """podman and buildah push from local storage and recompress: compare uncompressed layer digests."""
    return clients.skopeo_inspect(ref, config=True, creds=creds).json()["rootfs"]["diff_ids"]


def refused(result: ClientResult) -> str:
    """The client failed; returns its stderr with logrus's quoting undone (`\\"root\\"` → `"root"`)."""
    assert result.returncode != 0, f"expected the client to be refused:\n{result.describe()}"
    return result.stderr.replace('\\"', '"')


# --- skopeo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("format", [pytest.param("v2s2", marks=pytest.mark.sqlite), "oci"])
def test_skopeo_push_then_pull_returns_the_same_layers(target, account, clients, test_images, tmp_path, format):
    image = test_images.unique()
    repo = push(clients, target, account, image, tag="v1", format=format)

    clients.skopeo_pull_dir(target.ref(repo, "v1"), tmp_path / "pulled", creds=account.creds)

    manifest = json.loads((tmp_path / "pulled" / "manifest.json").read_bytes())
    assert manifest.get("mediaType", OCI_MANIFEST) == MANIFEST_TYPE[format]
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    for digest in [*image.layer_digests, image.config_digest]:
        data = (tmp_path / "pulled" / digest.split(":", 1)[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest


def test_skopeo_inspect_shows_digest_and_config(target, account, clients, test_images):
    image = test_images.unique()
    repo = push(clients, target, account, image)

    manifest, digest = raw_manifest(clients, target.ref(repo), creds=account.creds)
    summary = clients.skopeo_inspect(target.ref(repo), creds=account.creds).json()
    config = clients.skopeo_inspect(target.ref(repo), config=True, creds=account.creds).json()

    assert manifest["config"]["digest"] == image.config_digest
    assert summary["Digest"] == digest
    assert summary["Layers"] == image.layer_digests
    assert (config["architecture"], config["os"], config["config"]["Cmd"]) == ("amd64", "linux", ["/bin/sh"])


def test_skopeo_list_tags(target, account, clients, test_images):
    image = test_images.unique()
    repo = target.repo(account)
    for tag in ("v2", "latest", "v1"):
        push(clients, target, account, image, repo=repo, tag=tag)

    tags = clients.skopeo_list_tags(f"{target.host}/{repo}", creds=account.creds).json()

    assert sorted(tags["Tags"]) == ["latest", "v1", "v2"]


def test_skopeo_delete_removes_the_tag(target, account, clients, test_images):
    repo = push(clients, target, account, test_images.unique(), tag="gone")
    push(clients, target, account, test_images.unique(), repo=repo, tag="kept")

    clients.skopeo_delete(target.ref(repo, "gone"), creds=account.creds)

    tags = clients.skopeo_list_tags(f"{target.host}/{repo}", creds=account.creds).json()
    assert tags["Tags"] == ["kept"]
    refused(clients.skopeo_inspect(target.ref(repo, "gone"), creds=account.creds, check=False))


# --- podman -------------------------------------------------------------------------------------


def test_podman_login_with_password(target, account, clients, test_images):
    clients.podman_login(target.host, *account.creds)
    assert target.host in clients.auth_entries()

    repo = target.repo(account)
    clients.load(test_images.unique(), "local/app:latest")
    clients.podman_push("local/app:latest", target.ref(repo))

    clients.skopeo_inspect(target.ref(repo), creds=account.creds)


def test_podman_login_with_personal_access_token(target, account, clients, test_images, committed):
    target.require_hub("personal access tokens")
    from accounts.models import AccessToken
    from accounts.services import access_token_create

    with committed():
        _, secret = access_token_create(user=account.user, label="e2e podman", scope=AccessToken.Scope.WRITE)

    clients.podman_login(target.host, account.username, secret)
    repo = target.repo(account)
    clients.load(test_images.unique(), "local/app:latest")
    clients.podman_push("local/app:latest", target.ref(repo))

    clients.skopeo_inspect(target.ref(repo), creds=account.creds)


@pytest.mark.parametrize("format", ["v2s2", "oci"])
def test_podman_push(target, account, clients, test_images, format):
    """podman and buildah PATCH with Transfer-Encoding: chunked, two layers in parallel."""
    image = test_images.unique()
    clients.podman_login(target.host, *account.creds)
    clients.load(image, "local/app:latest")
    repo = target.repo(account)

    clients.podman_push("local/app:latest", target.ref(repo, "v1"), format=format)

    manifest, _ = raw_manifest(clients, target.ref(repo, "v1"), creds=account.creds)
    assert manifest["mediaType"] == MANIFEST_TYPE[format]
    assert pushed_diff_ids(clients, target.ref(repo, "v1"), account.creds) == image.config["rootfs"]["diff_ids"]


def test_podman_pull(target, account, clients, test_images):
    repo = push(clients, target, account, test_images.unique(), tag="v1")
    _, digest = raw_manifest(clients, target.ref(repo, "v1"), creds=account.creds)
    clients.podman_login(target.host, *account.creds)

    clients.podman_pull(target.ref(repo, "v1"))

    assert clients.podman_image_digest(target.ref(repo, "v1")) == digest


def test_podman_search_finds_the_repository(target, account, clients, test_images):
    repo = push(clients, target, account, test_images.unique())
    clients.podman_login(target.host, *account.creds)

    found = clients.podman_search(f"{target.host}/{repo.split('/')[1]}").stdout.split()

    assert f"{target.host}/{repo}" in found


def test_podman_search_lists_exact_name_first(target, account, clients, test_images):
    target.require_hub("search ranking")
    term = unique("s")
    image = test_images.unique()
    for name in (f"aaa-{term}", f"{term}-zzz", term):
        push(clients, target, account, image, repo=f"{account.username}/{name}")

    found = clients.podman_search(f"{target.host}/{term}").stdout.split()

    assert found[0] == f"{target.host}/{account.username}/{term}", found
    assert len(found) == 3


def test_podman_search_list_tags(target, account, clients, test_images):
    image = test_images.unique()
    repo = target.repo(account)
    for tag in ("v1", "v2"):
        push(clients, target, account, image, repo=repo, tag=tag)
    clients.podman_login(target.host, *account.creds)

    lines = clients.podman_search(f"{target.host}/{repo}", list_tags=True).stdout.splitlines()

    assert sorted(line.split()[-1] for line in lines[1:]) == ["v1", "v2"], lines


def test_podman_logout_forgets_the_credentials(target, account, clients, test_images):
    clients.podman_login(target.host, *account.creds)
    clients.load(test_images.unique(), "local/app:latest")

    clients.podman_logout(target.host)

    assert target.host not in clients.auth_entries()
    refused(clients.podman_push("local/app:latest", target.ref(target.repo(account)), check=False))


# --- buildah ------------------------------------------------------------------------------------


def test_buildah_login_then_push(target, account, clients, test_images):
    image = test_images.unique()
    clients.load(image, "local/app:latest")
    clients.buildah_login(target.host, *account.creds)
    repo = target.repo(account)

    clients.buildah_push("local/app:latest", target.ref(repo, "v1"))

    assert pushed_diff_ids(clients, target.ref(repo, "v1"), account.creds) == image.config["rootfs"]["diff_ids"]


def test_buildah_pull(target, account, clients, test_images):
    repo = push(clients, target, account, test_images.unique(), tag="v1")

    clients.buildah_pull(target.ref(repo, "v1"), creds=account.creds)

    images = clients.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"]).stdout.split()
    assert target.ref(repo, "v1") in images


@pytest.mark.parametrize("format", ["oci", "v2s2"])
def test_multiarch_index_push_and_override_arch(target, account, clients, test_images, format):
    repo = target.repo(account)
    clients.buildah_manifest_create("local/multi:latest")
    for image in test_images.multiarch.values():
        clients.buildah_manifest_add("local/multi:latest", image.ref)

    clients.buildah_manifest_push("local/multi:latest", target.ref(repo, "multi"), format=format,
                                  creds=account.creds)

    index, _ = raw_manifest(clients, target.ref(repo, "multi"), creds=account.creds)
    assert index["mediaType"] == LIST_TYPE[format]
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    for arch, image in test_images.multiarch.items():
        config = clients.skopeo_inspect(target.ref(repo, "multi"), config=True, override_arch=arch,
                                        creds=account.creds).json()
        assert config["architecture"] == arch
        assert config["rootfs"]["diff_ids"] == image.config["rootfs"]["diff_ids"]


# --- Blob reuse and cross-repository mount ------------------------------------------------------


def test_push_of_an_image_sharing_a_layer_reuses_it(target, account, clients, test_images):
    repo = push(clients, target, account, test_images.small, tag="v1")

    result = clients.skopeo_push(test_images.second, target.ref(repo, "v2"), format="oci", creds=account.creds,
                                 debug=True)

    shared, added = test_images.second.layer_digests
    assert shared == test_images.small.layer_digests[0]
    assert f"Skipping blob {shared} (already present)" in result.stderr, result.describe()
    assert f"Skipping blob {added}" not in result.stderr, result.describe()
    tags = clients.skopeo_list_tags(f"{target.host}/{repo}", creds=account.creds).json()
    assert sorted(tags["Tags"]) == ["v1", "v2"]


def test_cross_repository_mount(target, account, clients, test_images, tmp_path):
    """The second push HEADs/mounts the blobs from the first repository (an optimization): it must work."""
    image = test_images.unique()
    first = push(clients, target, account, image)

    second = push(clients, target, account, image)

    clients.skopeo_pull_dir(target.ref(second), tmp_path / "pulled", creds=account.creds)
    manifest = json.loads((tmp_path / "pulled" / "manifest.json").read_bytes())
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    assert first != second


# --- Anonymous access, namespaces -----------------------------------------------------------


def test_anonymous_pull_of_a_public_repository(target, account, clients, test_images, tmp_path):
    target.require_hub("anonymous pull of public repositories")
    repo = push(clients, target, account, test_images.unique())

    clients.skopeo_pull_dir(target.ref(repo), tmp_path / "pulled")

    assert (tmp_path / "pulled" / "manifest.json").exists()


def test_anonymous_pull_of_a_private_repository_is_refused(target, account, clients, test_images, tmp_path,
                                                           committed):
    target.require_hub("private repositories")
    from repositories.models import Repository

    repo = push(clients, target, account, test_images.unique())
    namespace, name = repo.split("/")
    with committed():
        assert Repository.objects.filter(namespace__name=namespace, name=name).update(is_private=True) == 1

    refused(clients.skopeo_pull_dir(target.ref(repo), tmp_path / "pulled", check=False))


def test_root_push_by_a_non_staff_user_is_refused(target, account, clients, test_images):
    target.require_hub("root repositories")

    stderr = refused(clients.skopeo_push(test_images.unique(), target.ref(unique("root")), creds=account.creds,
                                         check=False))

    assert ROOT_REFUSAL in stderr


def test_push_into_someone_elses_namespace_is_denied(target, make_account, clients, test_images, committed):
    target.require_hub("namespaces")
    from repositories.models import Repository

    alice, bob = make_account(), make_account()
    name = unique()

    refused(clients.skopeo_push(test_images.unique(), target.ref(f"{bob.username}/{name}"), creds=alice.creds,
                                check=False))

    with committed():
        assert not Repository.objects.filter(namespace__name=bob.username, name=name).exists()


# --- OCI artifacts and referrers (oras-py) ------------------------------------------------------


def test_oci_artifact_with_a_subject_is_listed_as_referrer(target, account, clients, test_images, tmp_path):
    import oras.client
    import oras.oci

    repo = push(clients, target, account, test_images.unique(), tag="v1")
    manifest, subject_digest = raw_manifest(clients, target.ref(repo, "v1"), creds=account.creds)
    subject_size = len(clients.skopeo_inspect(target.ref(repo, "v1"), raw=True, creds=account.creds).stdout.encode())
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": repo}))
    config = tmp_path / "config.json"
    config.write_text("{}")
    artifact_type = "application/vnd.wharf.e2e.sbom"

    client = oras.client.OrasClient(hostname=target.host, insecure=True, auth_backend="basic")
    client.login(account.username, account.password, hostname=target.host, config_path=str(tmp_path / "auth.json"))
    response = client.push(
        target=target.ref(repo, "sbom"), files=[f"{sbom}:application/spdx+json"],
        manifest_config=f"{config}:{artifact_type}", disable_path_validation=True,
        config_path=str(tmp_path / "auth.json"),
        subject=oras.oci.Subject(mediaType=manifest.get("mediaType", OCI_MANIFEST), digest=subject_digest,
                                 size=subject_size),
    )
    assert response.status_code == 201, response.text
    artifact_digest = response.headers["Docker-Content-Digest"]
    if not target.is_hub:
        pytest.skip("the reference registry 2.8 has no referrers API (the artifact push itself worked)")

    referrers = target.api(account, repo, "pull").referrers(subject_digest)

    assert referrers.status_code == 200, referrers.text
    assert response.headers.get("OCI-Subject") == subject_digest
    index = referrers.json()
    assert [(d["digest"], d.get("artifactType")) for d in index["manifests"]] == [(artifact_digest, artifact_type)]

