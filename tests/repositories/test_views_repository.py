"""The repository page (/r/<ns>/<name>, /_/<name>) and its Overview tab, for every persona."""

import pytest
from django.test import Client

from repositories.models import Star
from tests.repositories.pages_support import (
    add_collaborator,
    official_repo,
    org_repo_with_team,
    page_url,
    personal_repo,
    push,
)

pytestmark = pytest.mark.django_db


def get(user, url):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(url)


def test_public_repository_overview_for_anonymous(alice):
    repo = personal_repo(alice, description="A tiny web server", full_description="# Hello\n\nRun **it**.")
    response = get(None, page_url(repo))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{alice.username}/{repo.name}" in response.context["pull_name"]
    assert "A tiny web server" in html
    assert "<h1>Hello</h1>" in html and "<strong>it</strong>" in html
    assert f"docker pull testserver/{alice.username}/{repo.name}" in html or "docker pull " in html
    assert "Sign in to star" in html
    assert "Settings" not in html.split('aria-label="Repository"')[1].split("</nav>")[0]


def test_pull_command_uses_the_public_host(alice, settings):
    repo = personal_repo(alice)
    html = get(None, page_url(repo)).content.decode()
    assert f'">docker pull {settings.HUB_PUBLIC_HOST}/{alice.username}/{repo.name}</code>' in html


@pytest.mark.parametrize("persona", ["anonymous", "stranger"])
def test_private_repository_is_404_for_outsiders(alice, charlie, persona):
    repo = personal_repo(alice, private=True, description="secret plans")
    response = get(None if persona == "anonymous" else charlie, page_url(repo))
    assert response.status_code == 404
    assert "secret plans" not in response.content.decode()


@pytest.mark.parametrize("tab", ["", "tags", "stats", "settings", "collaborators"])  # not `page`: see test_repo_url
def test_private_repository_every_tab_is_404_for_a_stranger(alice, charlie, tab):
    repo = personal_repo(alice, private=True)
    assert get(charlie, page_url(repo, tab)).status_code == 404


def test_missing_repository_is_404(alice):
    assert get(alice, f"/r/{alice.username}/nothing-here").status_code == 404


def test_private_repository_visible_to_owner_with_badge(alice):
    repo = personal_repo(alice, private=True)
    response = get(alice, page_url(repo))
    assert response.status_code == 200
    assert "badge-private" in response.content.decode()


def test_collaborator_sees_private_repository_without_admin_tabs(alice, bob):
    repo = personal_repo(alice, private=True)
    add_collaborator(repo, bob)
    html = get(bob, page_url(repo)).content.decode()
    tabs = html.split('aria-label="Repository"')[1].split("</nav>")[0]
    assert "Tags" in tabs and "Statistics" in tabs
    assert "Settings" not in tabs and "Collaborators" not in tabs


def test_owner_sees_collaborators_and_settings_tabs(alice):
    repo = personal_repo(alice)
    tabs = get(alice, page_url(repo)).content.decode().split('aria-label="Repository"')[1].split("</nav>")[0]
    assert "Collaborators" in tabs and "Settings" in tabs and "Permissions" not in tabs


@pytest.mark.parametrize(("level", "status", "admin_tabs"), [("read", 200, False), ("write", 200, False),
                                                              ("admin", 200, True)])
def test_org_team_levels(alice, bob, level, status, admin_tabs):
    repo = org_repo_with_team(alice, bob, level)
    response = get(bob, page_url(repo))
    assert response.status_code == status
    tabs = response.content.decode().split('aria-label="Repository"')[1].split("</nav>")[0]
    assert ("Permissions" in tabs) is admin_tabs
    assert ("Settings" in tabs) is admin_tabs
    assert "Collaborators" not in tabs


def test_org_member_without_team_permission_gets_404(alice, bob):
    repo = org_repo_with_team(alice, None, "")
    assert get(bob, page_url(repo)).status_code == 404


def test_official_image_page_has_badge_and_short_pull_name(alice, settings):
    repo = official_repo()
    response = get(None, f"/_/{repo.name}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "badge-official" in html
    assert f"docker pull {settings.HUB_PUBLIC_HOST}/{repo.name}</code>" in html
    assert "library/" not in html.split("<main")[1]


def test_library_path_redirects_to_official_path():
    repo = official_repo()
    response = get(None, f"/r/library/{repo.name}/tags")
    assert response.status_code == 302
    assert response["Location"] == f"/_/{repo.name}/tags"


def test_staff_administers_official_images(staff, alice):
    repo = official_repo()
    assert get(staff, page_url(repo, "settings")).status_code == 200
    assert get(alice, page_url(repo, "settings")).status_code == 404


def test_overview_shows_recent_tags_and_pull_count(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="1.0")
    repo.refresh_from_db()
    html = get(None, page_url(repo)).content.decode()
    assert ">1.0</a>" in html
    assert "Last pushed" in html


def test_overview_empty_states(alice):
    repo = personal_repo(alice)
    owner_html = get(alice, page_url(repo)).content.decode()
    assert "write an overview" in owner_html
    assert "No tags yet" in owner_html and f"/r/{alice.username}/{repo.name}/tags\">How to push" in owner_html
    stranger_html = get(None, page_url(repo)).content.decode()
    assert "have not written an overview" in stranger_html


def test_readme_is_sanitized_on_the_page(alice):
    repo = personal_repo(alice, full_description='<script>alert(1)</script>[x](javascript:alert(2))')
    html = get(None, page_url(repo)).content.decode()
    assert "alert(1)" not in html and "javascript:alert" not in html


def test_star_and_unstar(alice, bob):
    repo = personal_repo(alice)
    client = Client()
    client.force_login(bob)
    response = client.post(page_url(repo, "star"), {"action": "star"}, follow=True)
    assert response.status_code == 200
    assert Star.objects.filter(repository=repo, user=bob).exists()
    repo.refresh_from_db()
    assert repo.star_count == 1
    assert "Starred" in response.content.decode()
    client.post(page_url(repo, "star"), {"action": "unstar"})
    repo.refresh_from_db()
    assert repo.star_count == 0


def test_star_with_htmx_returns_the_button(alice, bob):
    repo = personal_repo(alice)
    client = Client()
    client.force_login(bob)
    response = client.post(page_url(repo, "star"), {"action": "star"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'aria-pressed="true"' in response.content.decode()
    assert "<html" not in response.content.decode()


def test_star_redirects_back_to_a_safe_next_only(alice, bob):
    repo = personal_repo(alice)
    client = Client()
    client.force_login(bob)
    assert client.post(page_url(repo, "star"), {"next": "/search?q=x"})["Location"] == "/search?q=x"
    assert client.post(page_url(repo, "star"), {"action": "unstar", "next": "https://evil.example/"})[
        "Location"] == page_url(repo)


def test_anonymous_star_goes_to_login(alice):
    repo = personal_repo(alice)
    response = Client().post(page_url(repo, "star"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_star_on_hidden_repository_is_404(alice, charlie):
    repo = personal_repo(alice, private=True)
    client = Client()
    client.force_login(charlie)
    assert client.post(page_url(repo, "star")).status_code == 404
    assert not Star.objects.filter(repository=repo).exists()


def test_forms_need_csrf(alice, bob):
    repo = personal_repo(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.post(page_url(repo, "star")).status_code == 403
