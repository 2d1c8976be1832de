"""Starring with htmx on a repository's own page also updates the header's star count (out of band);
from a list of repositories only the button comes back."""

import pytest
from django.test import Client

from tests.repositories.pages_support import page_url, personal_repo

pytestmark = pytest.mark.django_db


def star(user, repo, current_url: str):
    client = Client()
    client.force_login(user)
    return client.post(page_url(repo, "star"), {"action": "star"}, HTTP_HX_REQUEST="true",
                       HTTP_HX_CURRENT_URL=f"http://testserver{current_url}").content.decode()


def test_starring_on_the_repository_page_swaps_the_header_count(alice, bob):
    repo = personal_repo(alice)
    html = star(bob, repo, page_url(repo, "tags") + "?sort=name")
    assert '<li id="repo-stars" hx-swap-oob="true"><strong>1</strong> star</li>' in html


def test_starring_from_a_list_returns_only_the_button(alice, bob):
    repo = personal_repo(alice)
    html = star(bob, repo, "/search?q=app")
    assert 'aria-pressed="true"' in html and "repo-stars" not in html
