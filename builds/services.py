"""Build operations: linking a source, rules, triggering, cancelling and retrying, dispatching to the
build workers. Running a build (the worker's side: claim, reports, signing, the end) is builds/lifecycle.py."""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from celery import current_app
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts import audit
from builds import constants, logs, sandbox
from builds.constants import HARD_MARGIN_SECONDS, SOFT_MARGIN_SECONDS
from builds.models import Build, BuildRule, BuildSource, hash_token
from builds.tags import GitRef, RuleError, default_rule, matching_rules, parse_ref, should_skip, validate_rule
from repositories.models import Repository

logger = logging.getLogger(__name__)

SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
BRANCH_NAME_RE = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[^\s~^:?*\[\\]{1,255}(?<!/)(?<!\.lock)$")
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")


# --- Sources ----------------------------------------------------------------------------------------


def local_source_path(url: str) -> Path | None:
    """The resolved directory of a local source, None for a remote URL; ValidationError outside the roots."""
    if url.startswith("file://"):
        path = urlsplit(url).path
    elif url.startswith("/"):
        path = url
    else:
        return None
    resolved = Path(path).resolve()
    for root in settings.HUB_BUILD_LOCAL_ROOTS:
        root_path = Path(root)
        if resolved == root_path or root_path in resolved.parents:
            return resolved
    raise ValidationError({"url": "Local sources are accepted only under the directories in "
                                  "HUB_BUILD_LOCAL_ROOTS" + ("" if settings.HUB_BUILD_LOCAL_ROOTS else " (none set)")
                                  + "."}, code="local_root")


def validate_source_url(url: str) -> None:
    if not url or len(url) > 1000 or any(ch.isspace() for ch in url):
        raise ValidationError({"url": "Give the Git repository's https, ssh or local URL."}, code="url")
    if local_source_path(url) is not None:
        return
    if SCP_LIKE_RE.match(url):
        return
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http", "ssh"} or not parts.hostname:
        raise ValidationError({"url": "Use an https:// or ssh:// URL (or git@host:path)."}, code="scheme")
    if parts.scheme != "ssh" and (parts.username or parts.password):
        raise ValidationError({"url": "Do not put credentials in the URL: use a deploy key (ssh) instead."},
                              code="credentials")


def validate_branch(name: str) -> None:
    if not BRANCH_NAME_RE.match(name or ""):
        raise ValidationError({"default_branch": "Not a valid branch name."}, code="branch")


def _deploy_key(repository: Repository) -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} wharf-deploy-{repository.namespace.name}-{repository.name}"


def build_source_link(*, repository: Repository, url: str, default_branch: str = "main", user=None,
                      webhook_secret: str | None = None) -> tuple[BuildSource, str | None]:
    """Link (or re-link) a Git source; returns it and the new trigger token (None when it is kept)."""
    url = url.strip()
    validate_source_url(url)
    validate_branch(default_branch)
    with transaction.atomic():
        source = BuildSource.objects.filter(repository=repository).first()
        token = None
        if source is None:
            source = BuildSource(repository=repository, created_by=user)
            token = source.rotate_token()
        source.url, source.default_branch = url, default_branch
        if webhook_secret is not None:
            source.webhook_secret = webhook_secret
        if source.is_ssh and not source.deploy_public_key:
            source.deploy_private_key, source.deploy_public_key = _deploy_key(repository)
        source.save()
        if not repository.build_rules.exists():
            rule = default_rule(default_branch)  # Docker Hub's default, one definition (builds/tags.py)
            BuildRule.objects.create(repository=repository, source_type=rule.source_type, source=rule.source,
                                     docker_tag=rule.docker_tag)
        local = local_source_path(url)
        shown = url if local is None else f"file://{local}"
        Repository.objects.filter(pk=repository.pk).update(is_automated=True, source_url=shown[:200])
        repository.is_automated, repository.source_url = True, shown[:200]
        audit.record("build.source.link", account=repository.namespace, name=repository.full_name, actor=user,
                     data={"url": shown[:200], "default_branch": default_branch})
    return source, token


def build_source_rotate_token(*, source: BuildSource) -> str:
    token = source.rotate_token()
    repository = source.repository
    with transaction.atomic():
        source.save(update_fields=["token_hash", "updated_at"])
        audit.record("build.source.rotate_token", account=repository.namespace, name=repository.full_name)
    return token


def build_source_unlink(*, repository: Repository) -> None:
    with transaction.atomic():
        BuildSource.objects.filter(repository=repository).delete()
        audit.record("build.source.unlink", account=repository.namespace, name=repository.full_name)
        Repository.objects.filter(pk=repository.pk).update(is_automated=False, source_url="")
        repository.is_automated, repository.source_url = False, ""


def trigger_url(source: BuildSource, token: str) -> str:
    return f"{settings.HUB_PUBLIC_URL}/api/build/{source.uuid}/trigger/{token}/"


# --- Rules ------------------------------------------------------------------------------------------


def _clean_rule(rule: BuildRule) -> None:
    try:
        validate_rule(rule.source_type, rule.source, rule.docker_tag)
    except RuleError as error:
        raise ValidationError({"docker_tag" if "tag" in str(error) else "source": str(error)}) from None
    for field in ("dockerfile", "context"):
        value = getattr(rule, field) or ""
        if value.startswith("/") or ".." in Path(value).parts:
            raise ValidationError({field: "Give a path relative to the repository root."})
    for name in ("build_args", "secrets"):
        mapping = getattr(rule, name)
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,100}$", k) and isinstance(v, str)
                for k, v in mapping.items()):
            raise ValidationError({name: "An object of NAME: \"value\" strings."})


RULE_FIELDS = ("source_type", "source", "docker_tag", "dockerfile", "context", "build_args", "secrets", "enabled")


def _rule_audit_data(rule: BuildRule) -> dict:
    """What the audit log keeps of a rule: the names of its build arguments, never their values, nor its secrets."""
    return {"source_type": rule.source_type, "source": rule.source, "docker_tag": rule.docker_tag,
            "dockerfile": rule.dockerfile, "context": rule.context, "enabled": rule.enabled,
            "build_args": sorted(rule.build_args or {})}


def _rule_save(rule: BuildRule, action: str) -> BuildRule:
    _clean_rule(rule)
    repository = rule.repository
    with transaction.atomic():
        rule.save()
        audit.record(action, account=repository.namespace, name=repository.full_name, data=_rule_audit_data(rule))
    return rule


def build_rule_create(*, repository: Repository, **values) -> BuildRule:
    rule = BuildRule(repository=repository, **{k: v for k, v in values.items() if k in RULE_FIELDS})
    return _rule_save(rule, "build.rule.create")


def build_rule_update(*, rule: BuildRule, **values) -> BuildRule:
    for key, value in values.items():
        if key in RULE_FIELDS:
            setattr(rule, key, value)
    return _rule_save(rule, "build.rule.update")


def build_rule_delete(*, rule: BuildRule) -> None:
    repository = rule.repository
    with transaction.atomic():
        audit.record("build.rule.delete", account=repository.namespace, name=repository.full_name,
                     data=_rule_audit_data(rule))
        rule.delete()


# --- Creating and enqueueing builds -----------------------------------------------------------------


def build_worker_token(build_id: int) -> str | None:
    """A new one-build token for the worker that runs the build (stored hashed). It retires the
    previous one: a worker holding an older message for the same build is refused. None when the
    build is not queued any more (a worker claimed it meanwhile: its token stays valid)."""
    token = secrets.token_urlsafe(32)
    if not Build.objects.filter(pk=build_id, state=constants.QUEUED).update(
            worker_token_hash=hash_token(token), dispatched_at=timezone.now()):
        return None
    return token


def _send_to_worker(build_id: int) -> None:
    """Send the build to the `builds` queue, for a build worker, with a new one-build token."""
    token = build_worker_token(build_id)
    if token is None:
        return  # claimed (or cancelled) since it was read as queued
    limit = settings.HUB_BUILD_TIMEOUT_SECONDS
    current_app.send_task(constants.WORKER_RUN_TASK, args=[build_id, token], queue=constants.WORKER_QUEUE,
                          soft_time_limit=limit + SOFT_MARGIN_SECONDS, time_limit=limit + HARD_MARGIN_SECONDS)


WORKER_ENVIRONMENT_KEPT = ("PATH", "LANG", "LC_ALL", "TZ")
# The build worker's own settings: ssh host keys, and each build's sandbox limits (builds/sandbox.py Limits).
WORKER_ONLY_VARIABLES = ("HUB_BUILD_SSH_KNOWN_HOSTS", "HUB_BUILD_MEMORY_MB", "HUB_BUILD_PIDS", "HUB_BUILD_CPUS",
                         "HUB_BUILD_DISK_MB", "HUB_BUILD_DISK_RESERVE_MB", "HUB_BUILD_RUN_NETWORK")


def build_worker_environment() -> dict[str, str]:
    """The whole environment a build worker started by this hub gets: where the hub and the broker
    are, and nothing of the site's (no database URL, secret key, data dir, settings module)."""
    environment = {name: os.environ[name] for name in WORKER_ENVIRONMENT_KEPT if name in os.environ}
    environment.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    environment["HUB_INTERNAL_REGISTRY"] = settings.HUB_INTERNAL_REGISTRY
    if settings.REDIS_URL:
        environment["HUB_BUILD_BROKER_URL"] = settings.CELERY_BROKER_URL
    else:
        environment["HUB_BUILD_BROKER_DIR"] = str(settings.CELERY_QUEUES_DIR)
    if settings.HUB_BUILD_WORK_DIR:
        environment["HUB_BUILD_WORK_DIR"] = settings.HUB_BUILD_WORK_DIR
    for name in WORKER_ONLY_VARIABLES:  # read by the build worker only
        if os.environ.get(name):
            environment[name] = os.environ[name]
    return environment


@functools.cache
def build_sandbox_status() -> tuple[bool, str]:
    """(whether this machine can sandbox builds, a sentence saying which sandbox or what is missing), as the
    hub's pages show it; the build worker checks for itself before each build and refuses without it."""
    try:
        problem = sandbox.sandbox_problem(provision_ids=False, probe=False)
        description = sandbox.describe()
    except ValueError as error:  # a bad HUB_BUILD_* limit
        problem = str(error)
    if problem:
        return False, f"This machine cannot sandbox builds, so the build worker refuses to run them: {problem}."
    return True, f"Every build runs in a {description}."


def build_enqueue(build: Build) -> None:
    """Send the build to a build worker when the transaction commits (when builds are on here)."""
    build_id = build.pk
    if not settings.HUB_BUILDS_ENABLED:
        return  # it stays queued; a hub with builds on dispatches it

    def send() -> None:
        try:
            _send_to_worker(build_id)
        except Exception:  # noqa: BLE001 - the periodic dispatcher picks queued builds up again
            logger.warning("could not enqueue build %s; the dispatcher will", build_id)

    transaction.on_commit(send)


def _new_build(*, repository: Repository, source: BuildSource, rule: BuildRule | None, ref: GitRef, tag: str,
               commit: str, message: str, trigger: str, user=None, retry_of: Build | None = None) -> Build:
    build = Build.objects.create(
        repository=repository, rule=rule, trigger=trigger, source_url=source.url, commit=commit, ref=ref.full,
        message=message[:10000], tag=tag, dockerfile=rule.dockerfile if rule else "Dockerfile",
        context=rule.context if rule else ".", build_args=dict(rule.build_args) if rule else {},
        created_by=user, retry_of=retry_of,
    )
    logs.log_append(build.pk, f"build {build.pk} queued: {ref.full} {commit[:12] or '(head)'} → {tag}")
    build_enqueue(build)
    return build


def builds_trigger(*, source: BuildSource, ref: str, commit: str = "", message: str = "", trigger: str,
                   user=None, only_tag: str | None = None) -> list[Build]:
    """The builds a push of `commit` to `ref` starts (none for `[skip build]`)."""
    if commit and not COMMIT_RE.match(commit):
        raise ValidationError({"commit": "A commit is 7 to 64 hex digits."})
    if should_skip(message):
        logger.info("build of %s skipped: the commit message asks for it", source.repository)
        return []
    try:
        git_ref = parse_ref(ref)
    except RuleError as error:
        raise ValidationError({"ref": str(error)}) from None
    rules = {rule.pk: rule for rule in source.repository.build_rules.all()}
    matches = matching_rules([rule.as_spec() for rule in rules.values()], git_ref)
    if only_tag is not None:
        matches = [m for m in matches if m.tag == only_tag]
    with transaction.atomic():
        return [_new_build(repository=source.repository, source=source, rule=rules[m.rule.id], ref=git_ref, tag=m.tag,
                           commit=commit.lower(), message=message, trigger=trigger, user=user) for m in matches]


def builds_trigger_rules(*, source: BuildSource, trigger: str, user=None, source_type: str | None = None,
                         source_name: str | None = None, docker_tag: str | None = None) -> list[Build]:
    """Build the head of every enabled rule with a plain source (Docker Hub's empty-body trigger), or of the
    rules that match `source_type`/`source_name`/`docker_tag`."""
    builds = []
    with transaction.atomic():
        for rule in source.repository.build_rules.filter(enabled=True):
            if source_type and rule.source_type != source_type:
                continue
            name = source_name or rule.source
            if name.startswith("/") and name.endswith("/"):
                continue  # a regex names no ref: it needs a push
            git_ref = GitRef(rule.source_type, name)
            matches = matching_rules([rule.as_spec()], git_ref)
            if not matches or (docker_tag and matches[0].tag != docker_tag):
                continue
            builds.append(_new_build(repository=source.repository, source=source, rule=rule, ref=git_ref,
                                     tag=matches[0].tag, commit="", message="", trigger=trigger, user=user))
    return builds


def build_start_manual(*, repository: Repository, user, ref: str = "", commit: str = "",
                       rule: BuildRule | None = None) -> list[Build]:
    source = BuildSource.objects.filter(repository=repository).first()
    if source is None:
        raise ValidationError({"detail": "Link a Git source first."})
    if rule is not None:
        return builds_trigger_rules(source=source, trigger=constants.TRIGGER_MANUAL, user=user,
                                    source_type=rule.source_type, docker_tag=None,
                                    source_name=None if not ref else parse_ref(ref).name)
    if ref:
        return builds_trigger(source=source, ref=ref, commit=commit, trigger=constants.TRIGGER_MANUAL, user=user)
    return builds_trigger(source=source, ref=f"refs/heads/{source.default_branch}", commit=commit,
                          trigger=constants.TRIGGER_MANUAL, user=user)


def build_cancel(*, build: Build) -> Build:
    """Cancel: a queued build ends at once; a running one is stopped by its runner (it polls)."""
    if build.is_final:
        raise ValidationError({"detail": "This build has already finished."})
    with transaction.atomic():
        updated = Build.objects.filter(pk=build.pk, state=constants.QUEUED).update(
            state=constants.CANCELLED, cancel_requested=True, finished=timezone.now(), error="build cancelled")
        if not updated:
            Build.objects.filter(pk=build.pk).update(cancel_requested=True)
    build.refresh_from_db()
    if build.state == constants.CANCELLED and not build.log_archived:
        logs.log_append(build.pk, "build cancelled before it started")
        logs.log_archive(build)
    return build


def build_retry(*, build: Build, user=None) -> Build:
    if not build.is_final:
        raise ValidationError({"detail": "Only a finished build can be retried."})
    source = BuildSource.objects.filter(repository=build.repository).first()
    if source is None:
        raise ValidationError({"detail": "The repository has no Git source any more."})
    with transaction.atomic():
        rule = build.rule
        return _new_build(repository=build.repository, source=source, rule=rule, ref=parse_ref(build.ref),
                          tag=build.tag, commit=build.commit, message=build.message,
                          trigger=constants.TRIGGER_RETRY, user=user, retry_of=build)


# --- Dispatching queued builds to the build workers ----------------------------------------------------


def dispatch_queued_builds(*, now=None) -> int:
    """Send queued builds (oldest first) for namespaces with free slots; returns how many.

    A build whose message is still waiting in the queue (all workers busy) is not sent again, so the
    queue does not fill with copies; one that a worker sent back (no free slot then) is, and so is one
    whose message has been out for HUB_BUILD_REDISPATCH_SECONDS (a broker that lost it)."""
    if not settings.HUB_BUILDS_ENABLED:
        return 0  # a hub with builds off leaves queued builds to the hubs that run them
    now = now or timezone.now()
    limit = settings.HUB_BUILD_CONCURRENCY_PER_NAMESPACE
    lost = now - timedelta(seconds=settings.HUB_BUILD_REDISPATCH_SECONDS)
    running = dict(Build.objects.filter(state__in=constants.RUNNING).values_list("repository__namespace_id")
                   .annotate(n=Count("id")))
    sent = 0
    for build in Build.objects.filter(state=constants.QUEUED).select_related("repository").order_by("created"):
        namespace_id = build.repository.namespace_id
        if running.get(namespace_id, 0) >= limit:
            continue
        running[namespace_id] = running.get(namespace_id, 0) + 1  # it takes a slot, sent now or on its way
        if build.worker_token_hash and build.dispatched_at and build.dispatched_at > lost:
            continue  # its message is on its way to a worker
        _send_to_worker(build.pk)
        sent += 1
    return sent
