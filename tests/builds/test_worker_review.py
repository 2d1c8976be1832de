"""Review of the separate build worker: races between the dispatcher, the claim, the worker's reports
and the stale sweep; what a build's tokens can make the hub sign or record; tokens a failed claim
leaves behind; a Celery time limit that interrupts the runner."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from accounts.models import AccessToken
from builds import constants, lifecycle, services
from builds.executor import BuildOutcome
from builds.lifecycle import builds_sweep_stale
from builds.models import Build
from builds.runner import LocalRunner
from builds.services import build_worker_token
from registry.models import Manifest
from tests.builds.test_runner import alive, fake_buildah, job
from tests.builds.test_worker_protocol import COMMIT, call
from tests.registry.helpers import push_image, token_for
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db


# The fixtures of test_worker_protocol.py (build, token, claimed) and test_runner.py (source).

@pytest.fixture
def build(linked):
    source, _ = linked
    [queued] = services.builds_trigger(source=source, ref="refs/heads/main", commit=COMMIT, trigger="generic")
    return queued


@pytest.fixture
def token(build):
    return build_worker_token(build.pk)


@pytest.fixture
def claimed(client, build, token):
    response = call(client, build.pk, "claim", token)
    assert response.status_code == 200, response.content
    return response.json()["job"]


def pushed_digest(client, claimed, alice, tag="latest") -> str:
    name = f"{alice.username}/app"
    registry_token = token_for(client, alice.username, f"repository:{name}:pull,push", password=claimed["password"])
    push_image(client, name, registry_token, tag=tag)
    return Manifest.objects.get(repository__name="app", tags__name=tag).digest


# --- the dispatcher and the claim ------------------------------------------------------------------


def test_a_dispatch_that_loses_the_race_to_a_claim_keeps_the_running_workers_token(client, claimed, build, token):
    build_worker_token(build.pk)  # the dispatcher read the build while it was queued
    response = call(client, build.pk, "events", token, {"lines": ["still here"], "state": "building"})
    assert response.status_code == 200


def test_the_dispatcher_sends_no_message_for_a_build_claimed_meanwhile(claimed, build, monkeypatch):
    sent = []
    monkeypatch.setattr(services.current_app, "send_task", lambda *args, **kwargs: sent.append(args))
    services._send_to_worker(build.pk)
    assert sent == []


def test_a_claim_with_a_token_retired_while_it_was_being_checked_does_not_start_the_build(client, build, token):
    seen = lifecycle.build_for_worker(build.pk, token)  # the old message's worker passed the token check
    fresh = build_worker_token(build.pk)  # then the dispatcher sent the build again
    with pytest.raises(lifecycle.BuildGone):
        lifecycle.build_start_for_worker(seen)
    assert Build.objects.get(pk=build.pk).state == constants.QUEUED
    assert call(client, build.pk, "claim", fresh).status_code == 200  # the new message runs it


# --- finish: once, and only for a claimed build --------------------------------------------------------


def test_a_finish_after_the_stale_sweep_changes_nothing(client, claimed, build, token, alice, settings):
    Webhook.objects.create(repository=build.repository, name="ci", url="http://127.0.0.1:9/",
                           events=["build_failure", "build_success"], created_by=alice)
    seen = lifecycle.build_for_worker(build.pk, token)  # the worker's finish passed the token check
    later = timezone.now() + timedelta(seconds=settings.HUB_BUILD_TIMEOUT_SECONDS
                                       + settings.HUB_BUILD_STALE_MARGIN_SECONDS + 1)
    assert builds_sweep_stale(now=later) == 1
    lifecycle.build_worker_finish(seen, BuildOutcome(constants.FAILED, error="RUN exited 1"))
    build.refresh_from_db()
    assert build.state == constants.TIMED_OUT
    assert Delivery.objects.filter(event__in=["build_failure", "build_success"]).count() == 1


def test_a_second_finish_fires_no_second_webhook(claimed, build, token, alice):
    Webhook.objects.create(repository=build.repository, name="ci", url="http://127.0.0.1:9/",
                           events=["build_failure"], created_by=alice)
    first, second = lifecycle.build_for_worker(build.pk, token), lifecycle.build_for_worker(build.pk, token)
    lifecycle.build_worker_finish(first, BuildOutcome(constants.FAILED, error="one"))
    lifecycle.build_worker_finish(second, BuildOutcome(constants.FAILED, error="two"))
    build.refresh_from_db()
    assert build.error == "one" and Delivery.objects.filter(event="build_failure").count() == 1


def test_a_build_that_was_never_claimed_cannot_be_finished(client, build, token):
    body = {"state": "success", "digest": "sha256:" + "1" * 64, "signature_tag": "sha256-" + "1" * 64 + ".sig"}
    assert call(client, build.pk, "finish", token, body).status_code == 400
    assert Build.objects.get(pk=build.pk).state == constants.QUEUED


def test_success_for_a_digest_the_hub_did_not_sign_is_a_failure(client, claimed, build, token, alice):
    digest = pushed_digest(client, claimed, alice)
    body = {"state": "success", "digest": digest, "signature_tag": digest.replace(":", "-") + ".sig"}
    call(client, build.pk, "finish", token, body)
    build.refresh_from_db()
    assert build.state == constants.FAILED and "signed" in build.error


def test_success_for_the_signed_digest_is_recorded(client, claimed, build, token, alice):
    digest = pushed_digest(client, claimed, alice)
    tag = call(client, build.pk, "sign", token, {"digest": digest, "commit": COMMIT}).json()["tag"]
    call(client, build.pk, "finish", token, {"state": "success", "digest": digest, "signature_tag": tag,
                                             "commit": COMMIT})
    build.refresh_from_db()
    assert build.state == constants.SUCCESS and build.digest == digest and build.signature_tag == tag


# --- events after the build ended ---------------------------------------------------------------------


def test_a_late_state_report_does_not_reopen_a_finished_build(claimed, build, token, settings):
    seen = lifecycle.build_for_worker(build.pk, token)  # an events call passed the token check
    later = timezone.now() + timedelta(seconds=settings.HUB_BUILD_TIMEOUT_SECONDS
                                       + settings.HUB_BUILD_STALE_MARGIN_SECONDS + 1)
    builds_sweep_stale(now=later)
    lifecycle.build_worker_report(seen, lines=[], state=constants.PUSHING)
    assert Build.objects.get(pk=build.pk).state == constants.TIMED_OUT


# --- what the hub signs --------------------------------------------------------------------------------


def test_sign_refuses_a_manifest_the_build_did_not_push_to_its_tag(client, claimed, build, token, alice):
    other = pushed_digest(client, claimed, alice, tag="someone-elses")
    response = call(client, build.pk, "sign", token, {"digest": other, "commit": COMMIT})
    assert response.status_code == 400 and "digest" in response.json()


def test_sign_refuses_a_commit_other_than_the_builds(client, claimed, build, token, alice):
    digest = pushed_digest(client, claimed, alice)
    response = call(client, build.pk, "sign", token, {"digest": digest, "commit": "b" * 40})
    assert response.status_code == 400 and "commit" in response.json()


def test_sign_signs_one_digest_per_build(client, claimed, build, token, alice):
    first = pushed_digest(client, claimed, alice)
    assert call(client, build.pk, "sign", token, {"digest": first, "commit": COMMIT}).status_code == 200
    assert call(client, build.pk, "sign", token, {"digest": first, "commit": COMMIT}).status_code == 200  # a retry
    registry_token = token_for(client, alice.username, f"repository:{alice.username}/app:pull,push",
                               password=claimed["password"])
    push_image(client, f"{alice.username}/app", registry_token, tag="latest", salt="another")
    second = Manifest.objects.get(repository__name="app", tags__name="latest").digest
    assert second != first
    assert call(client, build.pk, "sign", token, {"digest": second, "commit": COMMIT}).status_code == 400


# --- a claim that fails after the build started -----------------------------------------------------------


def test_a_claim_that_fails_after_starting_the_build_fails_it_and_revokes_its_push_token(client, build, token,
                                                                                        settings, tmp_path):
    settings.HUB_BUILD_LOCAL_ROOTS = [str(tmp_path / "elsewhere")]  # the source's root was removed since
    response = call(client, build.pk, "claim", token)
    assert response.status_code == 410
    build.refresh_from_db()
    assert build.state == constants.FAILED and "HUB_BUILD_LOCAL_ROOTS" in build.error
    assert not AccessToken.objects.filter(repository=build.repository, revoked_at__isnull=True).exists()


# --- a Celery time limit that interrupts the runner -------------------------------------------------------


class SoftLimitReporter:
    """A reporter during whose polling Celery's soft time limit goes off (it can strike anywhere)."""

    def __init__(self, after: float):
        self.at = time.monotonic() + after

    def log(self, line):
        pass

    def state(self, state):
        pass

    def cancelled(self):
        if time.monotonic() > self.at:
            raise SoftTimeLimitExceeded()
        return False


def test_an_interrupted_build_leaves_no_buildah_running(tmp_path, source):
    repo, commit = source
    buildah, record = fake_buildah(tmp_path, sleep=300)
    LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False).execute(job(repo, commit),
                                                                           SoftLimitReporter(after=3), None)
    pids = [int(pid) for pid in (record / "pids").read_text().split()]
    assert pids and not any(alive(pid) for pid in pids)
