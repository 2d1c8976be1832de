"""The repository header's source: a link for a web (https/http) source, plain text for a local path or
an ssh URL (a `file://` link goes nowhere in a visitor's browser)."""

import pytest
from django.test import Client

from repositories.models import Repository
from tests.repositories.pages_support import page_url, personal_repo

pytestmark = pytest.mark.django_db


def header(repo) -> str:
    html = Client().get(page_url(repo)).content.decode()
    return html.split('class="meta repo-meta"')[1].split("</ul>")[0]


def with_source(alice, url: str):
    repo = personal_repo(alice)
    Repository.objects.filter(pk=repo.pk).update(source_url=url, is_automated=True)
    repo.refresh_from_db()
    return repo


def test_a_web_source_is_a_link(alice):
    assert '<a href="https://git.example.com/alice/app.git" rel="nofollow noopener">Source</a>' in header(
        with_source(alice, "https://git.example.com/alice/app.git"))


@pytest.mark.parametrize("url", ["file:///srv/git/app", "ssh://git@git.example.com/app.git"])
def test_a_local_or_ssh_source_is_text(alice, url):
    html = header(with_source(alice, url))
    assert f"<code class=\"small\">{url}</code>" in html and "<a href" not in html
