"""Retention policies: what a plan lists, what a run removes (and what it never does), the pages."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from registry import retention
from registry.models import Manifest, RetentionPolicy, RetentionRun, Tag
from registry.signals import tag_deleted
from repositories.models import Repository
from repositories.services import repository_set_immutable_tags
from tests.factories import make_organization
from tests.registry.helpers import (
    OCI_INDEX,
    digest_of,
    index_manifest,
    pull_push,
    push_image,
    push_manifest,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
NOW = timezone.now()


@pytest.fixture
def repo(client, alice, name):
    """alice/app with tags t1 … t5, t1 pushed 50 days ago, t5 10 days ago."""
    token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
    for number in range(1, 6):
        push_image(client, name, token, tag=f"t{number}")
        Tag.objects.filter(name=f"t{number}").update(pushed_at=NOW - dt.timedelta(days=60 - 10 * number))
    repository = Repository.objects.get(name="app")
    repository.token = token
    return repository


def policy_for(repository, **rules) -> RetentionPolicy:
    return RetentionPolicy.objects.create(repository=repository, **rules)


def tags(repository) -> set[str]:
    return set(Tag.objects.filter(repository=repository).values_list("name", flat=True))


def test_keep_last_removes_the_older_tags(repo):
    policy = policy_for(repo, keep_last=2)
    assert [removal.tag for removal in retention.plan(policy, now=NOW)] == ["t3", "t2", "t1"]
    made = retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert made.removed_count == 3 and not made.error
    assert tags(repo) == {"t4", "t5"}
    assert {item["tag"] for item in made.removed} == {"t1", "t2", "t3"}


def test_keep_days_keeps_what_was_pushed_or_pulled_recently(repo):
    Tag.objects.filter(repository=repo, name="t1").update(last_pulled_at=NOW - dt.timedelta(days=1))
    retention.run(policy_for(repo, keep_days=25), trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert tags(repo) == {"t1", "t4", "t5"}


def test_either_rule_keeps_a_tag(repo):
    retention.run(policy_for(repo, keep_last=1, keep_days=25), trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert tags(repo) == {"t4", "t5"}


def test_patterns_choose_the_tags_and_immutable_and_signature_tags_always_stay(client, repo, name):
    signature = f"sha256-{Tag.objects.get(name='t1').manifest.digest[7:]}.sig"
    push_image(client, name, repo.token, tag="sig-source", salt="sig")
    Tag.objects.filter(name="sig-source").update(name=signature, pushed_at=NOW - dt.timedelta(days=90))
    repository_set_immutable_tags(repository=repo, enabled=True, rules=["t2"])
    policy = policy_for(repo, keep_last=0, include_patterns=["t[0-9]"], exclude_patterns=["t3"])
    assert {removal.tag for removal in retention.plan(policy, now=NOW)} == {"t1", "t4", "t5"}
    retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    remaining = tags(repo)
    assert remaining >= {"t2", "t3"} and not remaining & {"t1", "t4", "t5"}
    assert signature in remaining


def test_untagged_manifests_older_than_the_limit_go_but_index_children_stay(client, repo, name):
    old_body, _ = push_image(client, name, repo.token, tag="gone", salt="old")
    Tag.objects.filter(name="gone").delete()
    child, _ = push_image(client, name, repo.token, tag="child", arch="arm64", salt="child")
    push_manifest(client, name, "multi", index_manifest([(child, "linux", "arm64")]), repo.token, OCI_INDEX)
    Tag.objects.filter(name="child").delete()  # untagged, but the index names it
    Manifest.objects.filter(repository=repo).update(created_at=NOW - dt.timedelta(days=40))
    policy = policy_for(repo, untagged_days=30)
    assert [(removal.tag, removal.digest) for removal in retention.plan(policy, now=NOW)] == [("", digest_of(old_body))]
    retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert not Manifest.objects.filter(repository=repo, digest=digest_of(old_body)).exists()
    assert Manifest.objects.filter(repository=repo, digest=digest_of(child)).exists()


def test_a_dry_run_lists_exactly_what_a_run_then_removes_and_removes_nothing(repo):
    policy = policy_for(repo, keep_last=3)
    dry = retention.run(policy, trigger=RetentionRun.Trigger.DRY_RUN, now=NOW)
    assert tags(repo) == {"t1", "t2", "t3", "t4", "t5"}
    real = retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert dry.removed == real.removed and dry.removed_count == real.removed_count == 2


def test_every_removed_tag_fires_the_tag_delete_event(repo):
    heard = []

    def listener(sender, **kwargs):
        heard.append(kwargs["tag_name"])

    tag_deleted.connect(listener)
    try:
        retention.run(policy_for(repo, keep_last=4), trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    finally:
        tag_deleted.disconnect(listener)
    assert heard == ["t1"]


def test_a_tag_pushed_again_since_the_plan_is_not_removed(client, repo, name, monkeypatch):
    policy = policy_for(repo, keep_last=4)
    planned = retention.plan(policy, now=NOW)
    body, _ = push_image(client, name, repo.token, tag="t1", salt="again")  # t1 now names another image
    monkeypatch.setattr(retention, "plan", lambda policy, now=None: planned)
    made = retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, now=NOW)
    assert made.removed_count == 0
    assert Tag.objects.get(repository=repo, name="t1").manifest.digest == digest_of(body)


def test_an_organization_policy_covers_its_repositories_without_one_of_their_own(client, alice):
    organization = make_organization(alice)
    names = [f"{organization.name}/one", f"{organization.name}/two"]
    for name in names:
        token = pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:]
        push_image(client, name, token, tag="old")
        push_image(client, name, token, tag="new", salt="new")
        Tag.objects.filter(name="old", repository__name=name.split("/")[1]).update(
            pushed_at=NOW - dt.timedelta(days=5))
    own = Repository.objects.get(name="two")
    RetentionPolicy.objects.create(repository=own, enabled=False, keep_last=0)
    RetentionPolicy.objects.create(namespace=organization.namespace, keep_last=1)
    assert retention.run_all(now=NOW) == 1
    assert tags(Repository.objects.get(name="one")) == {"new"}
    assert tags(own) == {"old", "new"}  # its own (disabled) policy replaces the organization's


def test_the_daily_run_is_on_beats_schedule(settings):
    assert settings.CELERY_BEAT_SCHEDULE["run-retention-policies"]["task"] == "registry.run_retention_policies"


def test_the_settings_page_saves_dry_runs_and_runs_a_policy(alice, repo, name):
    web = Client()
    web.force_login(alice)
    url = f"/r/{name}/settings/retention"
    fields = {"enabled": "on", "keep_last": "3", "keep_days": "", "include_patterns": "", "exclude_patterns": "",
              "untagged_days": ""}
    dry = web.post(url, {**fields, "action": "dry-run"})
    assert dry.status_code == 200
    page = dry.content.decode()
    assert "2 items would go" in page and ":t1" in page and ":t2" in page
    assert tags(repo) == {"t1", "t2", "t3", "t4", "t5"}
    ran = web.post(url, {**fields, "action": "run"}, follow=True)
    assert "Retention removed 2 items." in ran.content.decode()
    assert tags(repo) == {"t3", "t4", "t5"}
    history = web.get(f"/r/{name}/settings").content.decode()
    assert "Recent runs" in history and "Dry run" in history and "Run now" in history


def test_bad_patterns_and_an_empty_policy_are_refused_with_a_reason(alice, repo, name):
    web = Client()
    web.force_login(alice)
    url = f"/r/{name}/settings/retention"
    bad = web.post(url, {"enabled": "on", "keep_last": "1", "include_patterns": "(a)\\1", "action": "save"})
    assert bad.status_code == 400 and "linear time" in bad.content.decode()
    empty = web.post(url, {"enabled": "on", "action": "save"})
    assert empty.status_code == 400 and "at least one rule" in empty.content.decode()
    assert not RetentionPolicy.objects.filter(repository=repo).exists()


def test_only_admins_reach_the_policy(bob, repo, name):
    web = Client()
    web.force_login(bob)
    response = web.post(f"/r/{name}/settings/retention", {"enabled": "on", "keep_last": "0", "action": "run"})
    assert response.status_code in (403, 404)
    assert tags(repo) == {"t1", "t2", "t3", "t4", "t5"}


def test_an_organization_owner_sets_the_policy_on_the_settings_page(alice, bob):
    organization = make_organization(alice)
    web = Client()
    web.force_login(alice)
    saved = web.post(f"/orgs/{organization.name}/settings/retention",
                     {"enabled": "on", "keep_days": "30", "action": "save"})
    assert saved.status_code == 302
    assert RetentionPolicy.objects.get(namespace=organization.namespace).keep_days == 30
    stranger = Client()
    stranger.force_login(bob)
    refused = stranger.post(f"/orgs/{organization.name}/settings/retention",
                            {"enabled": "on", "keep_days": "1", "action": "save"})
    assert refused.status_code in (403, 404)
