"""The periodic sweep: builds left running by a dead worker end as timed out, with the reason logged."""

import logging
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from builds import constants, logs
from builds.lifecycle import builds_sweep_stale
from builds.models import Build
from builds.tasks import sweep_stale_builds_task

pytestmark = pytest.mark.django_db


def make(repository, state, *, started_ago: float | None):
    started = timezone.now() - timedelta(seconds=started_ago) if started_ago is not None else None
    return Build.objects.create(repository=repository, state=state, source_url="/x", ref="refs/heads/main",
                                tag="latest", started=started)


@pytest.fixture
def limits(build_settings):
    build_settings.HUB_BUILD_TIMEOUT_SECONDS = 100
    build_settings.HUB_BUILD_STALE_MARGIN_SECONDS = 50
    return build_settings


def test_a_build_running_past_timeout_and_margin_is_timed_out(limits, linked, repository, caplog):
    stale = make(repository, constants.BUILDING, started_ago=151)
    with caplog.at_level(logging.WARNING, logger="builds.lifecycle"):
        assert builds_sweep_stale() == 1
    stale.refresh_from_db()
    assert stale.state == constants.TIMED_OUT and stale.finished is not None
    assert "still building after 151 seconds" in stale.error and "100-second limit" in stale.error
    assert stale.log_archived and any("its worker stopped without finishing it" in line
                                      for line in logs.log_read(stale).lines)
    assert any(f"build {stale.pk} of" in r.getMessage() and "worker died or was killed" in r.getMessage()
               for r in caplog.records)


def test_builds_within_the_limit_and_other_states_are_left_alone(limits, linked, repository):
    recent = make(repository, constants.PUSHING, started_ago=140)  # past the timeout, not past the margin
    queued = make(repository, constants.QUEUED, started_ago=None)
    Build.objects.filter(pk=queued.pk).update(created=timezone.now() - timedelta(days=1))
    done = make(repository, constants.SUCCESS, started_ago=10_000)
    cancelled = make(repository, constants.CANCELLED, started_ago=10_000)
    assert builds_sweep_stale() == 0
    for build, state in ((recent, constants.PUSHING), (queued, constants.QUEUED), (done, constants.SUCCESS),
                         (cancelled, constants.CANCELLED)):
        build.refresh_from_db()
        assert build.state == state


def test_every_running_state_is_swept(limits, linked, repository):
    builds = [make(repository, state, started_ago=1000) for state in sorted(constants.RUNNING)]
    assert sweep_stale_builds_task() == len(builds)
    assert set(Build.objects.filter(pk__in=[b.pk for b in builds]).values_list("state", flat=True)) == {
        constants.TIMED_OUT}
    assert builds_sweep_stale() == 0  # final: a second sweep changes nothing


def test_the_sweep_is_on_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-stale-builds"]
    assert entry["task"] == sweep_stale_builds_task.name and entry["schedule"] > 0
    assert django_settings.HUB_BUILD_STALE_MARGIN_SECONDS >= 300  # beyond Celery's hard time limit margin
