"""Read-side helpers for the web pages: the repository a request may see, dashboards, tags, statistics.

Everything here is bounded by the page it serves (limits, paging, one repository's rows); nothing
scans the whole database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from accounts.models import Namespace
from accounts.services import user_organizations
from oci.manifests import InvalidManifest, image_platform, parse_manifest
from oci.names import ATTACHMENT_TAG_RE
from registry.models import Manifest, Tag
from registry.services.manifests import referrers
from registry.storage import read_small_blob
from repositories.models import Collaborator, PullStat, Repository, Star
from repositories.permissions import ADMIN, DELETE, PULL, PUSH, Actor, repository_actions
from repositories.rows import ROW_COLUMNS
from repositories.selectors import repositories_visible_to

CONFIG_LIMIT = 1 << 20
DASHBOARD_SORTS = {
    "pushed": (),  # last pushed first, never-pushed last (see dashboard_repositories)
    "name": ("namespace__name", "name"),
    "pulls": ("-pull_count", "namespace__name", "name"),
    "stars": ("-star_count", "namespace__name", "name"),
}
TAG_SORTS = {"newest": ("-pushed_at", "name"), "name": ("name",), "oldest": ("pushed_at", "name")}
STAT_RANGES = (30, 90, 365)


@dataclass
class RepositoryAccess:
    """A repository and what the current user may do with it (the tabs follow from this)."""

    repository: Repository
    actions: frozenset[str]
    is_starred: bool = False

    @property
    def can_push(self) -> bool:
        return PUSH in self.actions

    @property
    def can_delete(self) -> bool:
        return DELETE in self.actions

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.actions


def repository_for_request(request, namespace: str, name: str, *, need: str = PULL) -> RepositoryAccess:
    """The repository, or 404 when it does not exist or the user may not `need` it (never 403)."""
    repository = (
        Repository.objects.select_related("namespace", "namespace__user", "namespace__organization")
        .filter(namespace__name=namespace, name=name, namespace__deleted_at=None, is_pending=False)
        .first()
    )
    if repository is None:
        raise Http404("No such repository")
    actions = repository_actions(Actor.for_user(request.user), repository)
    if PULL not in actions or need not in actions:
        raise Http404("No such repository")
    starred = request.user.is_authenticated and Star.objects.filter(repository=repository, user=request.user).exists()
    return RepositoryAccess(repository=repository, actions=actions, is_starred=starred)


def starred_ids(user, repositories) -> set[int]:
    """Which of these repositories `user` has starred (one query for a page of results)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    ids = [repository.pk for repository in repositories]
    return set(Star.objects.filter(user=user, repository_id__in=ids).values_list("repository_id", flat=True))


# --- dashboard ------------------------------------------------------------------------------------


def user_namespaces(user) -> list[Namespace]:
    """The user's own namespace and those of their organizations."""
    organizations = user_organizations(user=user)
    return list(Namespace.objects.filter(Q(user=user) | Q(organization__in=organizations)).order_by("name"))


def dashboard_repositories(user, namespaces: list[Namespace], *, namespace: str = "", visibility: str = "",
                           sort: str = "pushed") -> QuerySet[Repository]:
    repositories = repositories_visible_to(Actor.for_user(user)).filter(namespace__in=namespaces)
    if namespace:
        repositories = repositories.filter(namespace__name=namespace)
    if visibility in ("public", "private"):
        repositories = repositories.filter(is_private=visibility == "private")
    if sort in DASHBOARD_SORTS and sort != "pushed":
        return repositories.order_by(*DASHBOARD_SORTS[sort])
    return repositories.order_by(F("last_pushed_at").desc(nulls_last=True), "namespace__name", "name")


def starred_repositories(user, limit: int = 10) -> list[Repository]:
    visible = repositories_visible_to(Actor.for_user(user)).values("pk")
    stars = (Star.objects.filter(user=user, repository__in=visible)
             .select_related("repository__namespace").order_by("-created_at")[:limit])
    return [star.repository for star in stars]


@dataclass
class Activity:
    when: dt.datetime
    kind: str  # push, star, collaborator
    repository: Repository
    actor: object | None = None
    detail: str = ""


def recent_activity(user, namespaces: list[Namespace], limit: int = 15) -> list[Activity]:
    """Pushes, stars and new collaborators in the user's namespaces, newest first."""
    visible = repositories_visible_to(Actor.for_user(user)).filter(namespace__in=namespaces).values("pk")
    events: list[Activity] = []
    for tag in (Tag.objects.filter(repository__in=visible).exclude(name__startswith="sha256-")
                .select_related("repository__namespace", "pushed_by").order_by("-pushed_at")[:limit]):
        events.append(Activity(tag.pushed_at, "push", tag.repository, tag.pushed_by, tag.name))
    for star in (Star.objects.filter(repository__in=visible).select_related("repository__namespace", "user")
                 .order_by("-created_at")[:limit]):
        events.append(Activity(star.created_at, "star", star.repository, star.user))
    for grant in (Collaborator.objects.filter(repository__in=visible)
                  .select_related("repository__namespace", "user").order_by("-created_at")[:limit]):
        events.append(Activity(grant.created_at, "collaborator", grant.repository, grant.user))
    events.sort(key=lambda event: event.when, reverse=True)
    return events[:limit]


# --- discovery ------------------------------------------------------------------------------------


def public_repositories() -> QuerySet[Repository]:
    return Repository.objects.select_related("namespace").filter(is_private=False, is_pending=False,
                                                                 namespace__deleted_at=None)


def explore_sections(limit: int = 12) -> dict[str, list[Repository]]:
    public = public_repositories().only(*ROW_COLUMNS)  # what rows show: never the READMEs
    by_name = ("namespace__name", "name")
    return {
        "official": list(public.filter(namespace__kind=Namespace.Kind.LIBRARY).order_by("-pull_count", "name")[:limit]),
        "most_pulled": list(public.filter(pull_count__gt=0).order_by("-pull_count", *by_name)[:limit]),
        "most_starred": list(public.filter(star_count__gt=0).order_by("-star_count", *by_name)[:limit]),
        "recent": list(public.filter(last_pushed_at__isnull=False).order_by("-last_pushed_at")[:limit]),
    }


# --- tags -----------------------------------------------------------------------------------------


def repository_tags(repository: Repository, *, query: str = "", sort: str = "newest") -> QuerySet[Tag]:
    """The repository's tags (attachment tags such as `sha256-….sig` are never listed), with their
    manifests' digests, platforms and sizes but not their bytes."""
    tags = (Tag.objects.filter(repository=repository).exclude(name__regex=rf"^{ATTACHMENT_TAG_RE.pattern}$")
            .select_related("manifest", "pushed_by").defer("manifest__content"))
    if query:
        tags = tags.filter(name__icontains=query)
    return tags.order_by(*TAG_SORTS.get(sort, TAG_SORTS["newest"]))


@dataclass
class PlatformImage:
    platform: dict
    manifest: Manifest | None
    layers: list = field(default_factory=list)
    history: list = field(default_factory=list)
    config_digest: str = ""


def _image_details(manifest: Manifest, platform: dict) -> PlatformImage:
    image = PlatformImage(platform=platform, manifest=manifest, config_digest=manifest.config_digest)
    try:
        parsed = parse_manifest(bytes(manifest.content), manifest.media_type)
    except InvalidManifest:
        return image
    image.layers = parsed.layers
    if parsed.config is not None:
        image.config_digest = parsed.config.digest
        try:
            config = read_small_blob(parsed.config.digest, CONFIG_LIMIT)
        except (FileNotFoundError, OSError):
            config = None
        if config:
            details = image_platform(config)
            image.history = details["history"]
            if not platform:
                image.platform = {k: details[k] for k in ("os", "architecture", "variant")}
    return image


def tag_details(repository: Repository, tag: Tag) -> dict:
    """Per-platform layers and config history, signatures and other referrers of one tag."""
    manifest = tag.manifest
    images: list[PlatformImage] = []
    if manifest.is_index:
        digests = [p.get("digest") for p in manifest.platforms]
        children = {m.digest: m for m in Manifest.objects.filter(repository=repository, digest__in=digests)}
        for platform in manifest.platforms:
            child = children.get(platform.get("digest"))
            images.append(_image_details(child, platform) if child else PlatformImage(platform, None))
    else:
        images.append(_image_details(manifest, (manifest.platforms or [{}])[0]))
    algorithm, _, hexdigest = manifest.digest.partition(":")
    attachments = (Tag.objects.filter(repository=repository)
                   .filter(Q(name=f"{algorithm}-{hexdigest}") | Q(name__startswith=f"{algorithm}-{hexdigest}."))
                   .select_related("manifest").order_by("name"))
    return {
        "images": [image for image in images if not _is_attestation(image)],
        "referrers": referrers(repository=repository, digest=manifest.digest, artifact_type=None),
        "attachments": list(attachments),
    }


def _is_attestation(image: PlatformImage) -> bool:
    """buildx stores provenance as an `unknown/unknown` index entry: not a platform people run."""
    return image.platform.get("os") == "unknown" and image.platform.get("architecture") == "unknown"


# --- statistics -----------------------------------------------------------------------------------


def daily_pulls(repository: Repository, days: int, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    today = today or timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    counts = dict(PullStat.objects.filter(repository=repository, tag="", day__gte=start, day__lte=today)
                  .values_list("day", "count"))
    return [(start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0)) for i in range(days)]


def stars_over_time(repository: Repository, days: int, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    """The running number of stars at the end of each day."""
    today = today or timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    start_at = timezone.make_aware(dt.datetime.combine(start, dt.time.min), dt.UTC)
    before = Star.objects.filter(repository=repository, created_at__lt=start_at).count()
    per_day = dict(Star.objects.filter(repository=repository, created_at__gte=start_at)
                   .annotate(day=TruncDate("created_at", tzinfo=dt.UTC)).values("day")
                   .annotate(n=Count("pk")).values_list("day", "n"))
    running, points = before, []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        running += per_day.get(day, 0)
        points.append((day, running))
    return points


def profile_repositories(namespace: Namespace, user, limit: int = 50) -> list[Repository]:
    """A profile's repositories: the public ones, plus the private ones `user` may see."""
    visible = repositories_visible_to(Actor.for_user(user)).filter(namespace=namespace)
    return list(visible.order_by("-pull_count", "name")[:limit])
