"""The home page: signed out (official images, most pulled), signed in (the dashboard)."""

import pytest
from django.test import Client

from repositories.models import Star
from tests.factories import UserFactory
from tests.repositories.pages_support import add_collaborator, official_repo, org_repo_with_team, personal_repo, push

pytestmark = pytest.mark.django_db


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def listed(response):
    return [repo.name for repo in response.context["page"].object_list]


def test_signed_out_home_shows_official_and_most_pulled(alice):
    official_repo(name="homeofficial")
    personal_repo(alice, name="homepulled", pull_count=9)
    personal_repo(alice, name="homesecret", pull_count=99, private=True)
    html = Client().get("/").content.decode()
    assert "homeofficial" in html and "homepulled" in html and "homesecret" not in html


def test_dashboard_empty_state(alice):
    html = as_user(alice).get("/").content.decode()
    assert "No repositories yet" in html and "Create a repository" in html
    assert "No activity yet" in html


def test_dashboard_lists_own_and_org_repositories(alice, bob):
    mine = personal_repo(alice, name="mine", private=True)
    org = org_repo_with_team(bob, alice, "read")
    personal_repo(bob, name="notmine")
    response = as_user(alice).get("/")
    assert set(listed(response)) == {mine.name, org.name}


def test_dashboard_filters_and_sort(alice):
    personal_repo(alice, name="aaa", private=True, pull_count=1, star_count=5)
    personal_repo(alice, name="bbb", pull_count=5, star_count=1)
    client = as_user(alice)
    assert listed(client.get("/", {"visibility": "private"})) == ["aaa"]
    assert listed(client.get("/", {"visibility": "public"})) == ["bbb"]
    assert listed(client.get("/", {"sort": "pulls"})) == ["bbb", "aaa"]
    assert listed(client.get("/", {"sort": "stars"})) == ["aaa", "bbb"]
    assert listed(client.get("/", {"sort": "name"})) == ["aaa", "bbb"]
    assert listed(client.get("/", {"namespace": "someoneelse"})) == []
    assert "No repositories match these filters" in client.get("/", {"namespace": "nope"}).content.decode()


def test_dashboard_sorts_last_pushed_first(alice, client):
    old = personal_repo(alice, name="never")
    pushed = personal_repo(alice, name="pushed")
    push(client, pushed, alice)
    assert listed(as_user(alice).get("/")) == [pushed.name, old.name]


def test_dashboard_starred_and_activity(alice, bob, client):
    repo = personal_repo(alice, name="busy")
    push(client, repo, alice, tag="v9")
    Star.objects.create(repository=repo, user=bob)
    add_collaborator(repo, bob)
    theirs = personal_repo(bob, name="theirs")
    Star.objects.create(repository=theirs, user=alice)
    response = as_user(alice).get("/")
    html = response.content.decode()
    assert [r.name for r in response.context["starred"]] == ["theirs"]
    kinds = {event.kind for event in response.context["activity"]}
    assert kinds == {"push", "star", "collaborator"}
    assert f"{alice.username} pushed" in html and ":v9</a>" in html
    assert f"{bob.username} starred" in html and f"{bob.username} became a collaborator" in html


def test_activity_hides_private_org_repositories_one_cannot_see(alice, bob, client):
    hidden = org_repo_with_team(alice, None, "")
    # bob is an org member (in a team) but has no permission on this private repository.
    from accounts.models import Membership
    from tests.factories import team

    Membership.objects.create(team=team(hidden.namespace.organization), user=bob)
    Star.objects.create(repository=hidden, user=UserFactory())
    response = as_user(bob).get("/")
    assert response.context["activity"] == []
    assert listed(response) == []
