"""The "trusted build" badge (repository header, tag rows, tag page) and the signing key on the overview."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from builds import constants
from builds.models import Build
from registry.models import Tag
from tests.repositories.pages_support import page_url, push

pytestmark = pytest.mark.django_db

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def successful_build(repository, tag_name: str, *, source_url: str = "https://github.com/alice/app.git",
                     state: str = constants.SUCCESS) -> Build:
    digest = Tag.objects.get(repository=repository, name=tag_name).manifest.digest
    return Build.objects.create(repository=repository, state=state, source_url=source_url, commit=COMMIT,
                                ref="refs/heads/main", tag=tag_name, digest=digest, finished=timezone.now())


@pytest.fixture
def pushed(linked, repository, alice):
    """alice/app, automated, with tags `latest` (built here) and `manual` (pushed by hand)."""
    client = Client()
    push(client, repository, alice, tag="latest")
    push(client, repository, alice, tag="manual", arch="arm64")
    return repository


def build_url(repository, build: Build) -> str:
    return f"/r/{repository.namespace.name}/{repository.name}/builds/{build.pk}"


def test_tag_rows_show_the_badge_only_for_built_tags(pushed):
    build = successful_build(pushed, "latest")
    html = Client().get(page_url(pushed, "tags")).content.decode()
    row_start = '<tr>\n    <th scope="row" data-label="Tag"><a class="mono" href="'
    rows = {row.split('">', 1)[0]: row for row in html.split(row_start)[1:]}
    latest = next(row for key, row in rows.items() if key.endswith("/latest"))
    manual = next(row for key, row in rows.items() if key.endswith("/manual"))
    assert "Trusted build" in latest and build_url(pushed, build) in latest
    assert 'href="https://github.com/alice/app.git"' in latest
    assert f'href="https://github.com/alice/app/commit/{COMMIT}"' in latest and ">0123456<" in latest
    assert "Trusted build" not in manual


def test_tag_page_shows_source_commit_and_log(pushed):
    build = successful_build(pushed, "latest")
    html = Client().get(page_url(pushed, "tags/latest")).content.decode()
    assert 'class="badge badge-success"' in html and "Trusted build" in html
    assert f'href="{build_url(pushed, build)}"' in html
    assert "https://github.com/alice/app.git" in html and COMMIT[:7] in html
    other = Client().get(page_url(pushed, "tags/manual")).content.decode()
    assert "Trusted build" not in other.split('<nav class="tabs"', 1)[1]


def test_repository_header_links_the_newest_successful_build(pushed):
    build = successful_build(pushed, "latest")
    html = Client().get(page_url(pushed)).content.decode()
    header = html.split('<nav class="tabs"', 1)[0]
    assert "Trusted build" in header and f'href="{build_url(pushed, build)}"' in header
    assert f"/commit/{COMMIT}" in header


def test_failed_builds_and_moved_tags_earn_no_badge(pushed):
    successful_build(pushed, "latest", state=constants.FAILED)
    html = Client().get(page_url(pushed, "tags")).content.decode()
    assert "Trusted build" not in html
    old = successful_build(pushed, "latest")
    Build.objects.filter(pk=old.pk).update(digest="sha256:" + "0" * 64)  # the tag moved since
    html = Client().get(page_url(pushed, "tags")).content.decode()
    assert "Trusted build" not in html


def test_local_sources_are_shown_not_linked(pushed, build_settings):
    path = f"{build_settings.HUB_BUILD_LOCAL_ROOTS[0]}/app"
    successful_build(pushed, "latest", source_url=path)
    html = Client().get(page_url(pushed, "tags/latest")).content.decode()
    assert "Trusted build" in html and f'href="{path}"' not in html and path in html
    assert f"<code title=\"{COMMIT}\">0123456</code>" in html


def test_one_build_query_for_the_whole_tags_page(pushed, alice):
    for name in ("a", "b", "c"):
        push(Client(), pushed, alice, tag=name, arch=name)
    for name in ("latest", "a", "b", "c"):
        successful_build(pushed, name)
    with CaptureQueriesContext(connection) as queries:
        html = Client().get(page_url(pushed, "tags")).content.decode()
    assert html.count("Trusted build</a>") == 1 + 4  # the header and four rows
    build_queries = [q["sql"] for q in queries.captured_queries if '"builds_build"' in q["sql"]]
    assert len(build_queries) == 2, build_queries  # the header's and the page's


def test_overview_shows_the_signing_key_on_trusted_repositories(pushed, settings):
    html = Client().get(page_url(pushed)).content.decode()
    assert 'href="http' in html and "/signing-key.pub" in html
    assert f"cosign verify --key {settings.HUB_PUBLIC_URL}/signing-key.pub" in html
    assert Client().get("/signing-key.pub").content.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_overview_of_an_untrusted_repository_has_no_signing_key(alice):
    from tests.repositories.pages_support import personal_repo

    html = Client().get(page_url(personal_repo(alice))).content.decode()
    assert "signing-key.pub" not in html and "Trusted build" not in html
