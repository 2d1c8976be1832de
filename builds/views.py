"""The Builds tab (HTML): source, rules, triggers for admins; builds list; a build page with a live log
(htmx polling, or a plain page reload without JavaScript); cancel and retry. Plus /signing-key.pub."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from builds import constants, logs, services
from builds.models import Build, BuildRule, BuildSource
from builds.signing import image_signing_key, public_key_pem
from repositories import selectors
from repositories.permissions import ADMIN, PULL

PAGE_SIZE = 25


@require_GET
def signing_key(request: HttpRequest) -> HttpResponse:
    """The public half of the image-signing key (PEM), for `cosign verify --key` and policy.json."""
    response = HttpResponse(public_key_pem(image_signing_key(settings.KEYS_DIR)), content_type="application/x-pem-file")
    response["Cache-Control"] = "public, max-age=300"
    return response


def _access(request: HttpRequest, namespace: str, name: str, need: str = PULL) -> selectors.RepositoryAccess:
    return selectors.repository_for_request(request, namespace, name, need=need)


def _builds_url(repository, suffix: str = "") -> str:
    return f"/r/{repository.namespace.name}/{repository.name}/builds{suffix}"


def _errors(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return " ".join(error.messages)


def _render(request: HttpRequest, access: selectors.RepositoryAccess, template: str, context: dict) -> HttpResponse:
    repository = access.repository
    return render(request, template, {"repository": repository, "access": access, "tab": "builds",
                                      "pull_name": repository.display_name, "builds_url": _builds_url(repository),
                                      **context})


@require_GET
def builds_page(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    access = _access(request, namespace, name)
    repository = access.repository
    source = BuildSource.objects.filter(repository=repository).first()
    builds = Paginator(Build.objects.filter(repository=repository).order_by("-created", "-id"), PAGE_SIZE)
    context = {
        "source": source, "page": builds.get_page(request.GET.get("page")),
        "rules": BuildRule.objects.filter(repository=repository) if access.is_admin else [],
        "builds_enabled": settings.HUB_BUILDS_ENABLED, "local_roots": settings.HUB_BUILD_LOCAL_ROOTS,
        "sandbox": services.build_sandbox_status() if settings.HUB_BUILDS_ENABLED else None,
        "trigger_url": request.session.pop(f"build-trigger-{repository.pk}", None) if access.is_admin else None,
        "source_types": constants.SOURCE_TYPES, "public_url": settings.HUB_PUBLIC_URL,
    }
    return _render(request, access, "builds/builds.html", context)


def _remember_trigger(request: HttpRequest, source: BuildSource, token: str | None) -> None:
    if token:
        request.session[f"build-trigger-{source.repository_id}"] = services.trigger_url(source, token)


@require_POST
def source_link(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    access = _access(request, namespace, name, need=ADMIN)
    secret = request.POST.get("webhook_secret")
    try:
        source, token = services.build_source_link(
            repository=access.repository, url=request.POST.get("url", ""),
            default_branch=request.POST.get("default_branch", "").strip() or "main", user=request.user,
            webhook_secret=secret if secret else None)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        _remember_trigger(request, source, token)
        messages.success(request, "Source linked.")
    return redirect(_builds_url(access.repository))


@require_POST
def source_action(request: HttpRequest, namespace: str, name: str, action: str) -> HttpResponse:
    access = _access(request, namespace, name, need=ADMIN)
    source = BuildSource.objects.filter(repository=access.repository).first()
    if source is None or action not in ("rotate", "unlink", "start"):
        raise Http404
    if action == "rotate":
        _remember_trigger(request, source, services.build_source_rotate_token(source=source))
        messages.success(request, "New trigger URL made: the old one no longer works.")
    elif action == "unlink":
        services.build_source_unlink(repository=access.repository)
        messages.success(request, "Source unlinked.")
    elif action == "start":
        try:
            builds = services.build_start_manual(repository=access.repository, user=request.user)
        except ValidationError as error:
            messages.error(request, _errors(error))
        else:
            messages.success(request, f"{len(builds)} build(s) queued.")
    return redirect(_builds_url(access.repository))


def _rule_values(post) -> dict:
    def mapping(text: str) -> dict[str, str]:
        pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line]
        return {k.strip(): v for k, v in pairs if k.strip()}

    values = {"source_type": post.get("source_type", constants.BRANCH), "source": post.get("source", "").strip(),
              "docker_tag": post.get("docker_tag", "").strip(), "dockerfile": post.get("dockerfile", "").strip()
              or "Dockerfile", "context": post.get("context", "").strip() or ".",
              "build_args": mapping(post.get("build_args", "")), "enabled": post.get("enabled") == "on"}
    if post.get("secrets", "").strip():
        values["secrets"] = mapping(post["secrets"])
    return values


@require_POST
def rule_save(request: HttpRequest, namespace: str, name: str, pk: int | None = None) -> HttpResponse:
    access = _access(request, namespace, name, need=ADMIN)
    try:
        if request.POST.get("delete") and pk:
            rule = BuildRule.objects.filter(repository=access.repository, pk=pk).first()
            if rule is not None:
                services.build_rule_delete(rule=rule)
        elif pk:
            rule = BuildRule.objects.filter(repository=access.repository, pk=pk).first()
            if rule is None:
                raise Http404
            services.build_rule_update(rule=rule, **_rule_values(request.POST))
        else:
            services.build_rule_create(repository=access.repository, **_rule_values(request.POST))
    except ValidationError as error:
        messages.error(request, _errors(error))
    return redirect(_builds_url(access.repository))


def _build(access: selectors.RepositoryAccess, pk: int) -> Build:
    build = Build.objects.filter(repository=access.repository, pk=pk).first()
    if build is None:
        raise Http404
    return build


@require_GET
def build_page(request: HttpRequest, namespace: str, name: str, pk: int) -> HttpResponse:
    access = _access(request, namespace, name)
    build = _build(access, pk)
    chunk = logs.log_read(build, 0)
    return _render(request, access, "builds/build.html", {"build": build, "lines": chunk.lines,
                                                          "next_start": chunk.next_start})


@require_GET
def build_log(request: HttpRequest, namespace: str, name: str, pk: int) -> HttpResponse:
    """The htmx partial: log lines from ?start=N and the next poller (none once the build is final)."""
    access = _access(request, namespace, name)
    build = _build(access, pk)
    start = request.GET.get("start", "0")
    chunk = logs.log_read(build, int(start) if start.isdigit() else 0)
    if not request.htmx:
        return HttpResponse("\n".join(chunk.lines), content_type="text/plain; charset=utf-8")
    return render(request, "builds/includes/log_chunk.html", {"build": build, "lines": chunk.lines,
                                                               "next_start": chunk.next_start,
                                                               "builds_url": _builds_url(access.repository)})


@require_POST
def build_action(request: HttpRequest, namespace: str, name: str, pk: int, action: str) -> HttpResponse:
    if action not in ("cancel", "retry"):
        raise Http404
    access = _access(request, namespace, name, need=ADMIN)
    build = _build(access, pk)
    try:
        if action == "cancel":
            services.build_cancel(build=build)
            messages.info(request, "Cancelling the build.")
        else:
            build = services.build_retry(build=build, user=request.user)
            messages.success(request, f"Build {build.pk} queued.")
    except ValidationError as error:
        messages.error(request, _errors(error))
    return redirect(reverse("builds:build", kwargs={"namespace": namespace, "name": name, "pk": build.pk}))
