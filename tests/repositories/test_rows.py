"""Repository rows, badges and star buttons built in Python (repositories/rows.py): the markup lists
use, every value escaped."""

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from repositories import rows
from tests.repositories.pages_support import official_repo, personal_repo

pytestmark = pytest.mark.django_db


def test_a_row_escapes_what_people_typed(alice):
    repo = personal_repo(alice, description='<script>alert("x")</script>')
    html = rows.repository_row(repo)
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_a_row_links_the_repository_and_shows_its_figures(alice):
    repo = personal_repo(alice, pull_count=1, star_count=1234)
    html = rows.repository_row(repo)
    link = f'<a href="/r/{alice.username}/{repo.name}"><span class="muted">{alice.username} /</span> {repo.name}</a>'
    assert link in html
    assert '<li title="1234 stars"><span aria-hidden="true">★</span> 1.2K' in html
    assert '<li title="1 pulls">1 pull</li>' in html and "Never pushed" in html and "repo-row-action" not in html


def test_an_official_row_drops_the_namespace_and_shows_the_badge(db):
    repo = official_repo(name="alpine")
    html = rows.repository_row(repo)
    assert '<a href="/_/alpine">alpine</a>' in html and "badge-official" in html


def test_the_star_button_carries_the_token_and_an_escaped_next(alice):
    repo = personal_repo(alice)
    html = rows.star_button(repo, starred=True, next_url='/search?q="><b>', csrf_token="tok")
    assert 'name="csrfmiddlewaretoken" value="tok"' in html
    assert 'value="/search?q=&quot;&gt;&lt;b&gt;"' in html
    assert 'aria-pressed="true"' in html and "Unstar" in html


def test_the_row_tag_shows_a_star_button_only_to_a_signed_in_visitor(alice):
    repo = personal_repo(alice)
    template = Template("{% load repo_rows %}{% repo_row repository show_star=True %}")
    request = RequestFactory().get("/search?q=x")
    signed_in = template.render(Context({"repository": repo, "user": alice, "request": request,
                                         "starred": {repo.pk}, "csrf_token": "tok"}))
    assert 'class="repo-row-action"' in signed_in and "is-starred" in signed_in
    assert 'name="next" value="/search?q=x"' in signed_in
    anonymous = template.render(Context({"repository": repo, "user": None, "request": request}))
    assert "repo-row-action" not in anonymous


def _tag(repository, name="1.0", platforms=None, pushed_by=None):
    import datetime as dt

    from registry.models import Manifest, Tag

    manifest = Manifest(repository=repository, digest="sha256:" + "ab" * 32, platforms=platforms or [],
                        total_size=12_400_000)
    return Tag(repository=repository, name=name, manifest=manifest, pushed_by=pushed_by,
               pushed_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), last_pulled_at=None)


def test_a_tag_row_shows_platforms_size_digest_and_pusher(alice):
    repo = personal_repo(alice)
    platforms = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 {"os": "unknown", "architecture": "unknown"}]
    html = rows.tag_row(repo, _tag(repo, platforms=platforms, pushed_by=alice))
    assert f'href="/r/{alice.username}/{repo.name}/tags/1.0">1.0</a><div class="tag-pulls">' in html
    assert '<span class="chip">linux/amd64</span><span class="chip">linux/arm64/v8</span></span>' in html
    assert "unknown" not in html and "12.4 MB" in html and f"by {alice.username}</span>" in html
    assert '<code class="digest" title="sha256:' + "ab" * 32 + '">' + "ab" * 6 + "</code>" in html
    assert '<span class="muted">never</span>' in html and "Delete" not in html
    for label in ("Tag", "Digest", "Platforms", "Size", "Pushed", "Last pulled"):  # the phone layout's labels
        assert f'data-label="{label}"' in html


def test_a_tag_row_offers_its_pull_command_for_each_client_and_full_digest_to_copy(alice, settings):
    settings.HUB_PUBLIC_HOST = "hub.example:5000"
    settings.HUB_PUBLIC_URL = "https://hub.example:5000"
    repo = personal_repo(alice)
    html = rows.tag_row(repo, _tag(repo, name="1.0"))
    image = f"hub.example:5000/{alice.username}/{repo.name}:1.0"
    for client, command in (("docker", f"docker pull {image}"), ("podman", f"podman pull {image}"),
                            ("skopeo", f"skopeo copy docker://{image} oci-archive:{repo.name}-1.0.tar")):
        assert f'<div class="command tag-pull" data-client="{client}"><code>{command}</code>' in html
        assert f'data-copy="{command}" aria-label="Copy the {client} pull command for 1.0"' in html
    assert "tls-verify" not in html
    assert 'data-copy="sha256:' + "ab" * 32 + '" aria-label="Copy the digest of 1.0"' in html


def test_a_tag_row_on_a_plain_http_hub_tells_podman_and_skopeo_to_skip_tls(alice, settings):
    settings.HUB_PUBLIC_HOST = "hub.example:5000"
    settings.HUB_PUBLIC_URL = "http://hub.example:5000"
    repo = personal_repo(alice)
    html = rows.tag_row(repo, _tag(repo, name="1.0"))
    image = f"hub.example:5000/{alice.username}/{repo.name}:1.0"
    assert f'data-copy="docker pull {image}"' in html
    assert f'data-copy="podman pull --tls-verify=false {image}"' in html
    assert '<span class="opt">--tls-verify=false</span>' in html  # wraps whole, as in the pull box
    assert f'data-copy="skopeo copy --src-tls-verify=false docker://{image} oci-archive:{repo.name}-1.0.tar"' in html


def test_a_tag_row_without_platforms_shows_a_dash_and_offers_delete_to_those_who_may(alice):
    repo = personal_repo(alice)
    html = rows.tag_row(repo, _tag(repo), can_delete=True, trusted_badge='<span class="trusted-build">x</span>')
    assert '<span class="chips"><span class="muted small">—</span></span>' in html
    assert f'href="/r/{alice.username}/{repo.name}/tags/1.0/delete" aria-label="Delete tag 1.0">Delete</a>' in html
    assert '</a><div><span class="trusted-build">x</span></div><div class="tag-pulls">' in html
