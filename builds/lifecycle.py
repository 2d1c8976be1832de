"""A build's life on the hub: the hub's side of what a build worker does (its HTTP calls are builds/worker_api.py).

The worker claims a queued build (`build_start_for_worker`: a slot, a push token, the job), reports
log lines and states (`build_worker_report`), asks the hub to sign what it pushed (`build_sign`) and
reports the end (`build_worker_finish` → `build_finish`); builds nobody finishes are swept
(`builds_sweep_stale`). Queueing and dispatching are builds/services.py.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import AccessToken, Namespace
from accounts.services import access_token_create
from builds import constants, logs
from builds.constants import HARD_MARGIN_SECONDS
from builds.executor import BuildJob, BuildOutcome
from builds.models import Build, BuildSource, hash_token
from builds.services import COMMIT_RE, dispatch_queued_builds, local_source_path
from builds.signing import image_signing_key, signature_artifact
from lib.metrics import BUILD_DURATION, BUILDS
from oci.digests import sha256_digest
from oci.mediatypes import OCI_MANIFEST
from registry.models import Manifest
from registry.services.manifests import manifest_put
from registry.services.uploads import Body, monolithic_upload
from repositories.permissions import PUSH, Actor, repository_actions
from webhooks import payloads
from webhooks.services import emit_event

logger = logging.getLogger(__name__)


class BuildGone(Exception):
    """The worker is not to run this build (any more); `str()` says why."""


def build_for_worker(build_id: int, token: str) -> Build | None:
    """The build this one-build token was issued for, while it is not finished; None otherwise.

    Called on every worker request (an events call every second or so per running build): the rule
    (whose secrets are decrypted on load) and the push token are read only by the calls that use them."""
    build = Build.objects.select_related("repository__namespace").filter(pk=build_id).first()
    if build is None or not build.worker_token_hash or build.is_final:
        return None
    return build if secrets.compare_digest(build.worker_token_hash, hash_token(token)) else None


def build_claim(build_id: int, token_hash: str | None = None) -> Build | None:
    """queued → cloning, if the namespace has a free slot (and, given `token_hash`, the build was not
    sent again meanwhile); None when it stays queued (or is not queued)."""
    with transaction.atomic():
        build = Build.objects.select_related("repository__namespace").filter(pk=build_id).first()
        if build is None or build.state != constants.QUEUED:
            return None
        Namespace.objects.select_for_update().filter(pk=build.repository.namespace_id).first()
        running = Build.objects.filter(repository__namespace_id=build.repository.namespace_id,
                                       state__in=constants.RUNNING).count()
        if running >= settings.HUB_BUILD_CONCURRENCY_PER_NAMESPACE:
            return None
        claimable = Build.objects.filter(pk=build_id, state=constants.QUEUED)
        if token_hash is not None:
            claimable = claimable.filter(worker_token_hash=token_hash)
        if not claimable.update(state=constants.CLONING, started=timezone.now()):
            return None
    build.refresh_from_db()
    return build


def _builder(source: BuildSource):
    """The account the build acts as: who linked the source, or the namespace's user."""
    return source.created_by or source.repository.namespace.user


def _push_token(build: Build, owner) -> tuple[AccessToken, str]:
    """A registry token for this build: pushes to this one repository, pulls what `owner` may pull,
    expires when the build's time is up and is revoked when it ends."""
    token, secret = access_token_create(
        user=owner, label=f"build {build.pk} of {build.repository.full_name}", scope=AccessToken.Scope.WRITE,
        expires_at=timezone.now() + timedelta(seconds=settings.HUB_BUILD_TIMEOUT_SECONDS + HARD_MARGIN_SECONDS),
        repository=build.repository)
    Build.objects.filter(pk=build.pk).update(push_token=token)
    build.push_token = token
    return token, secret


def build_job(build: Build, source: BuildSource, username: str, password: str) -> BuildJob:
    local = local_source_path(build.source_url)
    secrets_ = dict(build.rule.secrets) if build.rule else {}
    return BuildJob(
        build_id=build.pk, source_url=str(local) if local else build.source_url, is_local=local is not None,
        commit=build.commit, ref=build.ref, message=build.message, dockerfile=build.dockerfile,
        context=build.context, build_args=dict(build.build_args), secrets=secrets_,
        registry=settings.HUB_INTERNAL_REGISTRY, public_host=settings.HUB_PUBLIC_HOST,
        repository=build.repository.full_name, tag=build.tag, username=username, password=password,
        timeout=float(settings.HUB_BUILD_TIMEOUT_SECONDS), ssh_private_key=source.deploy_private_key,
        allowed_networks=tuple(settings.HUB_BUILD_ALLOWED_NETWORKS),
    )


def build_start_for_worker(build: Build) -> BuildJob | None:
    """A worker claims the build: the job to run, None when it stays queued; BuildGone when the
    build is not queued any more or cannot run (then it has failed, saying why)."""
    if build.state != constants.QUEUED:
        raise BuildGone(f"the build is {build.state}, not queued")
    token_hash = build.worker_token_hash  # the token this worker was checked with
    if build_claim(build.pk, token_hash) is None:
        build.refresh_from_db()
        if build.state != constants.QUEUED:
            raise BuildGone(f"the build is {build.state}, not queued")
        if build.worker_token_hash != token_hash:
            raise BuildGone("the build was sent to a worker again: this message is retired")
        # Back to waiting: the token dies with this answer, and the dispatcher sends the build again
        # when its namespace has a free slot.
        Build.objects.filter(pk=build.pk, worker_token_hash=token_hash).update(worker_token_hash="")
        return None
    build.refresh_from_db()
    source = BuildSource.objects.select_related("created_by", "repository__namespace__user").filter(
        repository=build.repository).first()
    owner = _builder(source) if source is not None else None
    error = ""
    if source is None or owner is None:
        error = "the repository has no Git source any more"
    elif PUSH not in repository_actions(Actor.for_user(owner), build.repository):
        error = f"{owner.username} may no longer push to this repository"
    if error:
        build_finish(build=build, outcome=BuildOutcome(constants.FAILED, error=error))
        raise BuildGone(error)
    try:
        _token, secret = _push_token(build, owner)
        job = build_job(build, source, owner.username, secret)
    except Exception as failure:  # the build has started: it must end, and its token die
        logger.exception("build %s could not be prepared for its worker", build.pk)
        error = ("; ".join(failure.messages) if isinstance(failure, ValidationError)
                 else f"the hub could not prepare the build ({type(failure).__name__})")
        build_finish(build=build, outcome=BuildOutcome(constants.FAILED, error=error))
        raise BuildGone(error) from None
    logs.log_append(build.pk, f"building as {owner.username} with a token for {build.repository.full_name} "
                              f"that ends with the build")
    return job


def build_worker_report(build: Build, *, lines: list[str], state: str | None) -> bool:
    """Log lines and a state change from the worker; returns whether the build is to be cancelled
    (as read by `build_for_worker` in this same request: a cancel after it reaches the next call)."""
    if lines:
        logs.log_append(build.pk, *lines)
    if state in constants.RUNNING and build.state in constants.RUNNING:
        build.mark(state)
    return build.cancel_requested


def build_sign(build: Build, *, digest: str, commit: str) -> tuple[str, str]:
    """Sign the digest the build pushed with the site's key and store the signature next to it
    (in this process: the key never leaves the hub). Returns (signature tag, its manifest digest).

    Only what the build made is signed: the manifest its tag points to, with the build's commit, and
    one digest per build (a retry may sign the same one again). The digest is recorded on the build,
    so the worker's report of success must name it (`build_worker_finish`)."""
    commit = commit.lower()
    if not COMMIT_RE.match(commit) or not commit.startswith(build.commit):
        raise ValidationError({"commit": f"The build's commit is {build.commit or 'the head of its ref'}."})
    with transaction.atomic():
        locked = Build.objects.select_for_update().filter(pk=build.pk).first()
        if locked is None or locked.state not in constants.RUNNING:
            raise ValidationError({"detail": f"the build is {locked.state if locked else 'gone'}"})
        if locked.digest and locked.digest != digest:
            raise ValidationError({"digest": f"This build has signed {locked.digest} already."})
        if not Manifest.objects.filter(repository=build.repository, digest=digest, tags__name=build.tag).exists():
            raise ValidationError({"digest": f"Not the manifest of {build.repository.full_name}:{build.tag}."})
        Build.objects.filter(pk=build.pk).update(digest=digest, commit=commit)
    build.digest, build.commit = digest, commit
    owner = build.push_token.user if build.push_token else None
    source = BuildSource.objects.filter(repository=build.repository).first()
    if owner is None or source is None:
        raise ValidationError({"detail": "the build has no push credential or source any more"})
    artifact = signature_artifact(
        key=image_signing_key(settings.KEYS_DIR),
        docker_reference=f"{settings.HUB_PUBLIC_HOST}/{build.repository.full_name}", digest=digest,
        optional={"source": source.url, "commit": commit, "build": str(build.pk)})
    for blob in artifact.blobs:
        blob_digest = sha256_digest(blob)
        monolithic_upload(repository=build.repository, user=owner, digest=blob_digest,
                          body=Body(len(blob), iter([blob])))
    manifest = manifest_put(repository=build.repository, reference=artifact.tag, body=artifact.manifest,
                            content_type=OCI_MANIFEST, user=owner)
    Build.objects.filter(pk=build.pk).update(signature_tag=artifact.tag)
    build.signature_tag = artifact.tag
    return artifact.tag, manifest.digest


def build_worker_finish(build: Build, outcome: BuildOutcome) -> Build:
    if outcome.state not in constants.FINAL:
        raise ValidationError({"state": f"one of {', '.join(sorted(constants.FINAL))}"})
    if build.state not in constants.RUNNING:
        raise ValidationError({"detail": f"the build is {build.state}: it was never claimed"})
    signed = bool(build.signature_tag) and (outcome.digest, outcome.signature_tag) == (build.digest,
                                                                                        build.signature_tag)
    if outcome.state == constants.SUCCESS and not signed:
        outcome = BuildOutcome(constants.FAILED, commit=outcome.commit, error="the worker reported success "
                               "without a signed digest")
    return build_finish(build=build, outcome=outcome)


def build_finish(*, build: Build, outcome: BuildOutcome) -> Build:
    """End the build once: a build already final (a second report, or the stale sweep first) stays as it is."""
    with transaction.atomic():
        if not Build.objects.select_for_update().filter(pk=build.pk).exists():
            return build  # deleted meanwhile
        build.refresh_from_db()
        if build.is_final:
            return build
        last = logs.log_read(build).lines[-1:]
        if outcome.error and outcome.state != constants.SUCCESS and not (last and last[0].endswith(outcome.error)):
            logs.log_append(build.pk, outcome.error)
        if outcome.commit.startswith(build.commit) and len(outcome.commit) > len(build.commit):
            build.commit = outcome.commit  # the commit the head of the ref was at (never another one)
            build.save(update_fields=["commit"])
        logs.log_append(build.pk, f"build {outcome.state}")
        build.finish(outcome.state, digest=outcome.digest, error=outcome.error, signature_tag=outcome.signature_tag)
        if build.push_token_id is not None:
            AccessToken.objects.filter(pk=build.push_token_id, revoked_at__isnull=True).update(
                revoked_at=timezone.now())
        event = payloads.BUILD_SUCCESS if outcome.state == constants.SUCCESS else payloads.BUILD_FAILURE
        if outcome.state != constants.CANCELLED:
            emit_event(build.repository, event, build_data(build))
    logs.log_archive(build)
    transaction.on_commit(dispatch_queued_builds)
    transaction.on_commit(lambda: _count_finished(build))
    return build


def _count_finished(build: Build) -> None:
    BUILDS.labels(build.state).inc()
    if build.started is not None and build.finished is not None:
        BUILD_DURATION.labels(build.state).observe(max((build.finished - build.started).total_seconds(), 0.0))


def builds_sweep_stale(*, now=None) -> int:
    """Builds still in a running state long after their timeout (the worker died, or Celery's hard
    time limit killed it before the runner could finish them) end as timed out; returns how many."""
    now = now or timezone.now()
    limit = settings.HUB_BUILD_TIMEOUT_SECONDS + settings.HUB_BUILD_STALE_MARGIN_SECONDS
    cutoff = now - timedelta(seconds=limit)
    stale = Build.objects.filter(state__in=constants.RUNNING, started__lt=cutoff).values_list("pk", flat=True)
    swept = 0
    for build_id in list(stale):
        with transaction.atomic():
            build = (Build.objects.select_for_update().select_related("repository__namespace")
                     .filter(pk=build_id, state__in=constants.RUNNING).first())
            if build is None:
                continue  # it finished meanwhile
            ran = int((now - build.started).total_seconds())
            reason = (f"build timed out: still {build.state} after {ran} seconds, beyond the "
                      f"{settings.HUB_BUILD_TIMEOUT_SECONDS}-second limit; its worker stopped without finishing it")
            logger.warning("build %s of %s marked timed out: %s since %s (%s s, limit %s s + %s s margin); "
                           "its worker died or was killed", build.pk, build.repository, build.state,
                           build.started.isoformat(), ran, settings.HUB_BUILD_TIMEOUT_SECONDS,
                           settings.HUB_BUILD_STALE_MARGIN_SECONDS)
            build_finish(build=build, outcome=BuildOutcome(constants.TIMED_OUT, error=reason))
            swept += 1
    return swept


def build_data(build: Build) -> dict:
    """The `build_data` section of build_success/build_failure webhook payloads."""
    base = settings.HUB_PUBLIC_URL
    return {
        "build_id": build.pk, "state": build.state, "tag": build.tag, "digest": build.digest,
        "commit": build.commit, "ref": build.ref, "source_url": build.source_url,
        "signature_tag": build.signature_tag, "is_trusted": build.state == constants.SUCCESS,
        "build_url": f"{base}/r/{build.repository.namespace.name}/{build.repository.name}/builds/{build.pk}",
        "started": int(build.started.timestamp()) if build.started else None,
        "finished": int(build.finished.timestamp()) if build.finished else None,
    }
