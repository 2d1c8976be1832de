"""Relative times read "just now" for the last 45 seconds on every page ("0 minutes ago" came from
Django's timesince on the webhook and token pages): they all go through {% reltime %}."""

from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import AccessToken
from accounts.services import access_token_create
from webhooks import services

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_no_template_formats_times_with_timesince():
    using = [str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html") if "timesince" in path.read_text()]
    assert using == []


@pytest.mark.django_db
def test_a_token_used_seconds_ago_was_used_just_now(client, alice):
    token, _ = access_token_create(user=alice, label="laptop", scope="repo:read")
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    client.force_login(alice)
    page = client.get("/settings/tokens").content.decode()
    assert "just now</time>" in page and "0 minutes" not in page


@pytest.mark.django_db
def test_a_delivery_made_seconds_ago_was_made_just_now(client, alice, alice_repo):
    hook = services.webhook_create(repository=alice_repo, url="https://example.com/hook", user=alice, name="ci",
                                   events=["push"])
    hook.deliveries.create(repository=alice_repo, repository_name="alice/app", event="push", url=hook.url, body="{}",
                           state="failed")
    client.force_login(alice)
    page = client.get(f"/r/{alice_repo.namespace.name}/{alice_repo.name}/webhooks").content.decode()
    assert "just now</time>" in page and "0 minutes" not in page
