"""Repository pages: create, overview, tags, statistics, collaborators, permissions, settings, stars,
search and explore. Views parse and render; repositories.selectors and registry.selectors read,
repositories.services writes."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Namespace, Team
from oci.names import LIBRARY, is_attachment_tag
from registry import retention
from registry import selectors as registry_selectors
from registry.errors import ManifestUnknown, TagImmutable
from registry.mirror.selectors import mirrored_repositories
from registry.models import Tag
from registry.services.manifests import tag_delete as tag_delete_service
from registry.views import retention as retention_views
from repositories import forms, rows, selectors, services
from repositories.charts import time_chart
from repositories.markdown import render_markdown
from repositories.permissions import ADMIN, DELETE, PULL, Actor, may_create_repository
from repositories.search import CappedCountPaginator, CountCap, search_queryset
from repositories.templatetags.repo_format import repo_url

SEARCH_PAGE_SIZE = 25
TAGS_PAGE_SIZE = 25
SEARCH_SORTS = {"best": None, "stars": ("-star_count", "-pull_count"), "pulls": ("-pull_count", "-star_count"),
                "updated": ("-last_pushed_at",)}


def repository_page(need: str = PULL):
    """Load the repository named in the URL for this user (404 when they may not `need` it)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, namespace: str, name: str, **kwargs) -> HttpResponse:
            url_name = request.resolver_match.url_name if request.resolver_match else ""
            if namespace == LIBRARY and not url_name.startswith("official_") and request.method == "GET":
                return redirect(reverse(f"repositories:official_{url_name}", kwargs={"name": name, **kwargs}))
            access = selectors.repository_for_request(request, namespace, name, need=need)
            return view(request, access, **kwargs)

        return wrapper

    return decorator


def _render_repository(request: HttpRequest, access: selectors.RepositoryAccess, tab: str, template: str,
                       context: dict | None = None, status: int = 200) -> HttpResponse:
    repository = access.repository
    base = {"repository": repository, "access": access, "tab": tab,
            "pull_name": repository.display_name}
    return render(request, template, {**base, **(context or {})}, status=status)


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


# --- create ---------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def repository_create(request: HttpRequest) -> HttpResponse:
    actor = Actor.for_user(request.user)
    namespaces = [n for n in selectors.user_namespaces(request.user) if may_create_repository(actor, n)]
    if request.user.is_staff:
        namespaces += list(Namespace.objects.filter(kind=Namespace.Kind.LIBRARY))
    initial = {"namespace": request.GET.get("namespace", request.user.username)}
    form = forms.RepositoryCreateForm(request.POST or None, namespaces=namespaces, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            repository = services.repository_create(
                namespace=data["namespace_obj"], name=data["name"], user=request.user,
                is_private=data["visibility"] == "private", description=data["description"],
            )
        except ValidationError as error:
            form.add_error("name" if getattr(error, "code", "") in ("taken", None) else None, error)
        else:
            messages.success(request, f"Created {repository.display_name}. Push an image to it to add tags.")
            return redirect(repo_url(repository))
    return render(request, "repositories/create.html", {"form": form}, status=400 if form.errors else 200)


# --- repository tabs ------------------------------------------------------------------------------


@repository_page()
def repository_overview(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    recent_tags = list(registry_selectors.repository_tags(repository)[:5])
    return _render_repository(request, access, "overview", "repositories/overview.html", {
        "readme": render_markdown(repository.full_description),
        "recent_tags": recent_tags,
    })


@repository_page()
def repository_tags(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:128]
    sort = request.GET.get("sort", "newest")
    tags = registry_selectors.repository_tags(access.repository, query=query, sort=sort)
    page = Paginator(tags, TAGS_PAGE_SIZE).get_page(request.GET.get("page"))
    return _render_repository(request, access, "tags", "repositories/tags.html", {
        "page": page, "query": query, "sort": sort if sort in registry_selectors.TAG_SORTS else "newest",
        "query_string": urlencode({"q": query, "sort": sort}),
    })


def _tag_or_404(access: selectors.RepositoryAccess, tag: str) -> Tag:
    if is_attachment_tag(tag):
        raise Http404("No such tag")
    return get_object_or_404(registry_selectors.listed_tags(), repository=access.repository, name=tag)


@repository_page()
def tag_detail(request: HttpRequest, access: selectors.RepositoryAccess, tag: str) -> HttpResponse:
    tag_obj = _tag_or_404(access, tag)
    return _render_repository(request, access, "tags", "repositories/tag_detail.html", {
        "tag": tag_obj, **registry_selectors.tag_details(access.repository, tag_obj),
    })


@require_http_methods(["GET", "POST"])
@repository_page(need=DELETE)
def tag_delete(request: HttpRequest, access: selectors.RepositoryAccess, tag: str) -> HttpResponse:
    tag_obj = _tag_or_404(access, tag)
    if request.method == "POST":
        try:
            tag_delete_service(repository=access.repository, tag_name=tag_obj.name, user=request.user)
        except ManifestUnknown:
            messages.info(request, f"Tag {tag} was already gone.")
        except TagImmutable as refusal:
            messages.error(request, f"{refusal.message[:1].upper()}{refusal.message[1:]}. "
                                    "Change the tag immutability in Settings first.")
        else:
            messages.success(request, f"Deleted tag {tag}. The image stays reachable by digest until cleaned up.")
        return redirect(repo_url(access.repository, "tags"))
    return _render_repository(request, access, "tags", "repositories/tag_delete.html", {"tag": tag_obj})


@repository_page()
def repository_stats(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    if days not in selectors.STAT_RANGES:
        days = 30
    pulls = selectors.daily_pulls(access.repository, days)
    stars = selectors.stars_over_time(access.repository, days)
    return _render_repository(request, access, "stats", "repositories/stats.html", {
        "days": days, "ranges": selectors.STAT_RANGES,
        "pulls": pulls, "pulls_in_range": sum(count for _, count in pulls),
        "pulls_chart": time_chart(pulls, title=f"Pulls per day, last {days} days", y_label="Pulls",
                                  chart_id="pulls-chart"),
        "stars_chart": time_chart(stars, title=f"Stars, last {days} days", y_label="Stars", kind="line",
                                  chart_id="stars-chart"),
        "pull_rows": [(day, count) for day, count in reversed(pulls) if count],
    })


@require_POST
@repository_page()
def repository_star(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    if not request.user.is_authenticated:
        return redirect(f"{reverse('account_login')}?next={repo_url(repository)}")
    if request.POST.get("action") == "unstar":
        services.star_remove(repository=repository, user=request.user)
        access.is_starred = False
        text = f"Removed your star from {repository.display_name}."
    else:
        services.star_add(repository=repository, user=request.user)
        access.is_starred = True
        text = f"Starred {repository.display_name}."
    if getattr(request, "htmx", False):
        repository.refresh_from_db(fields=["star_count"])  # others' stars too
        button = rows.star_button(repository, starred=access.is_starred, next_url=request.POST.get("next", ""),
                                  csrf_token=get_token(request))
        # On the repository's own pages the header's star count is swapped too (out of band), not left stale.
        base = repo_url(repository)
        current = (request.htmx.current_url_abs_path or "").partition("?")[0]
        if current == base or current.startswith(base + "/"):
            button += render_to_string("repositories/includes/header_stars.html",
                                       {"repository": repository, "oob": True})
        return HttpResponse(button)
    messages.success(request, text)
    return redirect(_safe_next(request, repo_url(repository)))


# --- collaborators and team permissions -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@repository_page(need=ADMIN)
def repository_collaborators(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    if repository.is_organization_repository:
        return redirect(repo_url(repository, "permissions"))
    if repository.namespace.user_id is None:
        raise Http404("Official images have no collaborators")
    form = forms.CollaboratorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            collaborator = services.collaborator_add(repository=repository, username=form.cleaned_data["username"])
        except ValidationError as error:
            form.add_error("username", error)
        else:
            messages.success(request, f"{collaborator.user.username} can now pull and push {repository.display_name}.")
            return redirect(repo_url(repository, "collaborators"))
    collaborators = repository.collaborators.select_related("user").order_by("user__username")
    return _render_repository(request, access, "collaborators", "repositories/collaborators.html",
                              {"form": form, "collaborators": collaborators}, status=400 if form.errors else 200)


@require_POST
@repository_page(need=ADMIN)
def collaborator_remove(request: HttpRequest, access: selectors.RepositoryAccess, username: str) -> HttpResponse:
    try:
        services.collaborator_remove(repository=access.repository, username=username)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"Removed {username} from {access.repository.display_name}.")
    return redirect(repo_url(access.repository, "collaborators"))


@require_http_methods(["GET", "POST"])
@repository_page(need=ADMIN)
def repository_permissions(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    organization = repository.namespace.organization
    if organization is None:
        return redirect(repo_url(repository, "collaborators"))
    form = forms.TeamPermissionForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        try:
            grant = services.team_permission_set(repository=repository, team=team,
                                                 permission=form.cleaned_data["permission"])
        except ValidationError as error:
            form.add_error("team", error)
        else:
            messages.success(request, f"Team {team.name} now has {grant.get_permission_display().lower()} access.")
            return redirect(repo_url(repository, "permissions"))
    grants = repository.team_permissions.select_related("team").order_by("team__name")
    return _render_repository(request, access, "permissions", "repositories/permissions.html", {
        "form": form, "grants": grants, "organization": organization,
    }, status=400 if form.errors else 200)


@require_POST
@repository_page(need=ADMIN)
def permission_remove(request: HttpRequest, access: selectors.RepositoryAccess, team: str) -> HttpResponse:
    repository = access.repository
    team_obj = get_object_or_404(Team, organization_id=repository.namespace.organization_id, name=team)
    try:
        services.team_permission_remove(repository=repository, team=team_obj)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, f"Team {team} no longer has access to {repository.display_name}.")
    return redirect(repo_url(repository, "permissions"))


# --- settings -------------------------------------------------------------------------------------


def _settings_page(request, access, *, settings_form=None, visibility_form=None, delete_form=None,
                   immutable_form=None, retention_section=None, status=200):
    repository = access.repository
    return _render_repository(request, access, "settings", "repositories/settings.html", {
        "retention": retention_section or retention_views.section(retention.policy_for_scope(repository=repository)),
        "retention_action": repo_url(repository, "retention"),
        "settings_form": settings_form or forms.RepositorySettingsForm(initial={
            "description": repository.description, "full_description": repository.full_description}),
        "visibility_form": visibility_form or forms.VisibilityForm(initial={
            "visibility": "private" if repository.is_private else "public"}),
        "immutable_form": immutable_form or forms.ImmutableTagsForm(initial={
            "mode": (forms.ImmutableTagsForm.ALL_MUTABLE if not repository.immutable_tags
                     else forms.ImmutableTagsForm.SPECIFIC if repository.immutable_tags_rules
                     else forms.ImmutableTagsForm.ALL_IMMUTABLE),
            "rules": "\n".join(repository.immutable_tags_rules or [])}),
        "delete_form": delete_form or forms.RepositoryDeleteForm(expected=repository.display_name),
    }, status=status)


@require_http_methods(["GET", "POST"])
@repository_page(need=ADMIN)
def repository_settings(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    if request.method == "GET":
        return _settings_page(request, access)
    form = forms.RepositorySettingsForm(request.POST)
    if form.is_valid():
        services.repository_update(repository=access.repository, **form.cleaned_data)
        messages.success(request, "Saved the descriptions.")
        return redirect(repo_url(access.repository, "settings"))
    return _settings_page(request, access, settings_form=form, status=400)


@require_POST
@repository_page(need=ADMIN)
def repository_visibility(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    form = forms.VisibilityForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, access, visibility_form=form, status=400)
    private = form.cleaned_data["visibility"] == "private"
    services.repository_update(repository=access.repository, is_private=private)
    messages.success(request, f"{access.repository.display_name} is now {'private' if private else 'public'}.")
    return redirect(repo_url(access.repository, "settings"))


@require_POST
@repository_page(need=ADMIN)
def repository_immutable_tags(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    form = forms.ImmutableTagsForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, access, immutable_form=form, status=400)
    mode = form.cleaned_data["mode"]
    services.repository_set_immutable_tags(repository=access.repository, enabled=mode != form.ALL_MUTABLE,
                                           rules=form.cleaned_data["rules_list"])
    messages.success(request, {form.ALL_MUTABLE: "Every tag is mutable.",
                               form.ALL_IMMUTABLE: "Every tag is immutable now.",
                               form.SPECIFIC: "Tags matching the rules are immutable now."}[mode])
    return redirect(repo_url(access.repository, "settings"))


@require_POST
@repository_page(need=ADMIN)
def repository_retention(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    shown = retention_views.handle_post(request, retention.policy_for_scope(repository=access.repository))
    if shown is None:
        return redirect(repo_url(access.repository, "settings") + "#retention")
    return _settings_page(request, access, retention_section=shown, status=400 if shown.failed else 200)


@require_POST
@repository_page(need=ADMIN)
def repository_delete(request: HttpRequest, access: selectors.RepositoryAccess) -> HttpResponse:
    repository = access.repository
    form = forms.RepositoryDeleteForm(request.POST, expected=repository.display_name)
    if not form.is_valid():
        return _settings_page(request, access, delete_form=form, status=400)
    name = repository.display_name
    services.repository_delete(repository=repository, user=request.user)
    messages.success(request, f"Deleted {name}, its tags and its images.")
    return redirect("home")


# --- search and explore ---------------------------------------------------------------------------


def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    sort = request.GET.get("sort", "best")
    sort = sort if sort in SEARCH_SORTS else "best"
    official = request.GET.get("official") == "1"
    # Only what rows show: never the READMEs (up to 25,000 characters each).
    actor = Actor.for_user(request.user)
    results = search_queryset(actor=actor, query=query, official=official).only(*rows.ROW_COLUMNS)
    if SEARCH_SORTS[sort]:
        results = results.order_by(*SEARCH_SORTS[sort], "namespace__name", "name")
    cap = CountCap(query=query, official=official, actor=actor)
    page = CappedCountPaginator(results, SEARCH_PAGE_SIZE, cap=cap).get_page(request.GET.get("page"))
    return render(request, "repositories/search.html", {
        "query": query, "sort": sort, "official": official, "page": page,
        "query_string": urlencode({"q": query, "sort": sort, **({"official": "1"} if official else {})}),
        "starred": selectors.starred_ids(request.user, page.object_list),
        "mirrors": mirrored_repositories(request.user, query=query) if query and not official else [],
        "sorts": [("best", "Best match"), ("stars", "Most stars"), ("pulls", "Most pulls"),
                  ("updated", "Recently updated")],
    })


def explore(request: HttpRequest) -> HttpResponse:
    return render(request, "repositories/explore.html", {"sections": selectors.explore_sections(),
                                                         "mirrors": mirrored_repositories(request.user)})
