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
