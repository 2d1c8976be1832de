"""The Tags tab, the tag detail page and tag deletion."""

import pytest
from django.test import Client

from registry.models import Tag
from tests.registry.helpers import (
    artifact_manifest,
    digest_of,
    index_manifest,
    push_blob,
    push_image,
    push_manifest,
    token_for,
)
from tests.repositories.pages_support import add_collaborator, org_repo_with_team, page_url, personal_repo, push

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_tags_empty_state_tells_owner_how_to_push(alice, settings):
    repo = personal_repo(alice)
    html = logged_in(alice).get(page_url(repo, "tags")).content.decode()
    assert "No tags yet" in html
    assert f"docker push {settings.HUB_PUBLIC_HOST}/{alice.username}/{repo.name}:latest" in html


def test_tags_empty_state_for_visitors(alice):
    repo = personal_repo(alice)
    html = logged_in(None).get(page_url(repo, "tags")).content.decode()
    assert "Nothing has been pushed" in html


def test_tags_table_shows_digest_platform_size_and_pusher(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="v1", arch="arm64")
    tag = Tag.objects.get(repository=repo, name="v1")
    html = logged_in(None).get(page_url(repo, "tags")).content.decode()
    short = tag.manifest.digest.split(":")[1][:12]
    assert f'title="{tag.manifest.digest}">{short}</code>' in html
    assert '<span class="chip">linux/arm64</span>' in html
    assert " B</td>" in html or " kB</td>" in html
    assert f"by {alice.username}" in html
    assert "<time datetime=" in html and "UTC" in html
    assert "Delete" not in html  # anonymous


def test_attachment_tags_are_not_listed(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="v1")
    push(client, repo, alice, tag="sha256-" + "a" * 64 + ".sig")
    response = logged_in(alice).get(page_url(repo, "tags"))
    names = [tag.name for tag in response.context["page"].object_list]
    assert names == ["v1"]
    assert logged_in(alice).get(page_url(repo, "tags/sha256-" + "a" * 64 + ".sig")).status_code == 404


def test_tags_filter_and_sort(alice, client):
    repo = personal_repo(alice)
    for name in ("alpha", "beta", "alpine"):
        push(client, repo, alice, tag=name)
    response = logged_in(alice).get(page_url(repo, "tags"), {"q": "al", "sort": "name"})
    assert [t.name for t in response.context["page"].object_list] == ["alpha", "alpine"]
    response = logged_in(alice).get(page_url(repo, "tags"), {"sort": "newest"})
    assert response.context["page"].object_list[0].name == "alpine"
    response = logged_in(alice).get(page_url(repo, "tags"), {"q": "zzz"})
    assert "No tags match" in response.content.decode()


def test_tag_detail_lists_layers_history_and_referrers(alice, client):
    repo = personal_repo(alice)
    body, blobs = push_image(client, repo.full_name,
                             token_for(client, alice.username, f"repository:{repo.full_name}:pull,push"), tag="v1")
    token = token_for(client, alice.username, f"repository:{repo.full_name}:pull,push")
    push_blob(client, repo.full_name, b"{}", token)
    signature = artifact_manifest(artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json",
                                  subject={"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                           "digest": digest_of(body), "size": len(body)},
                                  annotations={"org.example.signer": "alice"})
    push_manifest(client, repo.full_name, digest_of(signature), signature, token)
    response = logged_in(None).get(page_url(repo, "tags/v1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Layers (1)" in html
    assert digest_of(blobs[1]).split(":")[1][:12] in html
    assert "test v1" in html  # the config history's created_by
    assert "application/vnd.dev.cosign.artifact.sig.v1+json" in html
    assert "org.example.signer" in html


def test_tag_detail_of_an_index_shows_each_platform(alice, client):
    repo = personal_repo(alice)
    name = repo.full_name
    token = token_for(client, alice.username, f"repository:{name}:pull,push")
    amd, _ = push_image(client, name, token, tag="amd", arch="amd64")
    arm, _ = push_image(client, name, token, tag="arm", arch="arm64")
    push_manifest(client, name, "multi", index_manifest([(amd, "linux", "amd64"), (arm, "linux", "arm64")]), token,
                  media_type="application/vnd.oci.image.index.v1+json")
    html = logged_in(None).get(page_url(repo, "tags/multi")).content.decode()
    assert html.count('class="card platform-card"') == 2
    assert "linux/amd64" in html and "linux/arm64" in html
    assert "multi-platform index" in html
    tags_html = logged_in(None).get(page_url(repo, "tags")).content.decode()
    row = tags_html.split(">multi</a>")[1].split("</tr>")[0]
    assert "linux/amd64" in row and "linux/arm64" in row


def test_tag_detail_empty_referrers_state(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="v1")
    html = logged_in(alice).get(page_url(repo, "tags/v1")).content.decode()
    assert "No signatures" in html and "cosign sign" in html


def test_missing_tag_is_404(alice):
    repo = personal_repo(alice)
    assert logged_in(alice).get(page_url(repo, "tags/nope")).status_code == 404


def test_owner_deletes_a_tag_after_confirmation(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="old")
    owner = logged_in(alice)
    confirm = owner.get(page_url(repo, "tags/old/delete"))
    assert confirm.status_code == 200 and "Delete tag old" in confirm.content.decode()
    assert Tag.objects.filter(repository=repo, name="old").exists()
    response = owner.post(page_url(repo, "tags/old/delete"), follow=True)
    assert not Tag.objects.filter(repository=repo, name="old").exists()
    assert "Deleted tag old" in response.content.decode()


@pytest.mark.parametrize("persona", ["collaborator", "stranger", "anonymous"])
def test_others_cannot_delete_tags(alice, bob, charlie, client, persona):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="keep")
    add_collaborator(repo, bob)
    user = {"collaborator": bob, "stranger": charlie, "anonymous": None}[persona]
    assert logged_in(user).post(page_url(repo, "tags/keep/delete")).status_code == 404
    assert Tag.objects.filter(repository=repo, name="keep").exists()


@pytest.mark.parametrize(("level", "allowed"), [("read", False), ("write", False), ("admin", True)])
def test_team_levels_and_tag_deletion(alice, bob, client, level, allowed):
    repo = org_repo_with_team(alice, bob, level)
    push(client, repo, alice, tag="t")
    html = logged_in(bob).get(page_url(repo, "tags")).content.decode()
    assert ('aria-label="Delete tag t"' in html) is allowed
    status = logged_in(bob).post(page_url(repo, "tags/t/delete")).status_code
    assert status == (302 if allowed else 404)
