"""The "trusted build" badge: which tags' manifests a successful build produced, one query per page."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django import template
from django.conf import settings
from django.urls import reverse

from builds import constants
from builds.models import Build
from registry.models import Tag

register = template.Library()

# Hosts whose web pages show a commit at <repository URL>/<path>/<sha>.
COMMIT_PATHS = {"github.com": "commit", "gitlab.com": "-/commit", "bitbucket.org": "commits",
                "codeberg.org": "commit"}
# What the badge shows (builds/includes/trusted_badge.html): a build row has some 45 columns.
BADGE_FIELDS = ("id", "repository_id", "digest", "commit", "source_url", "finished", "state")


def trusted_builds_for(repository, digests: Iterable[str]) -> dict[str, Build]:
    """{digest: the newest successful build that produced it} for `digests` (one query)."""
    wanted = {d for d in digests if d}
    if not wanted:
        return {}
    builds: dict[str, Build] = {}
    for build in (Build.objects.filter(repository=repository, state=constants.SUCCESS, digest__in=wanted)
                  .only(*BADGE_FIELDS).order_by("-finished", "-id")):
        builds.setdefault(build.digest, build)
    return builds


@register.simple_tag
def trusted_builds(repository, tags) -> dict[str, Build]:
    """`{% trusted_builds repository page.object_list as trusted %}` then `trusted|trusted_build:digest`."""
    return trusted_builds_for(repository, (getattr(tag.manifest, "digest", "") for tag in tags or ()))


@register.filter
def trusted_build(builds: dict, digest: str) -> Build | None:
    return builds.get(digest) if builds else None


@register.simple_tag
def repository_trusted_build(repository) -> Build | None:
    """The newest successful build whose image is still tagged in `repository` (one query)."""
    if not getattr(repository, "is_automated", False):
        return None
    tagged = Tag.objects.filter(repository=repository).values("manifest__digest")
    return (Build.objects.filter(repository=repository, state=constants.SUCCESS, digest__in=tagged)
            .only(*BADGE_FIELDS).order_by("-finished", "-id").first())


@register.filter
def web_source_url(url: str) -> str:
    """The source URL when a browser can open it (http/https), else ""."""
    return url if urlsplit(url or "").scheme in {"http", "https"} else ""


@register.filter
def commit_url(build: Build) -> str:
    """A link to the commit on well-known forges, else ""."""
    parts = urlsplit(build.source_url or "")
    path = COMMIT_PATHS.get((parts.hostname or "").lower())
    if parts.scheme != "https" or not path or not build.commit:
        return ""
    base = build.source_url.rstrip("/").removesuffix(".git")
    return f"{base}/{path}/{build.commit}"


@register.simple_tag
def tag_trusted_build(repository, tag) -> Build | None:
    """The successful build that produced `tag`'s manifest, if any (one query)."""
    digest = getattr(tag.manifest, "digest", "")
    return trusted_builds_for(repository, [digest]).get(digest)


@register.simple_tag
def signing_key_url() -> str:
    """The absolute URL of the public image-signing key (/signing-key.pub)."""
    return f"{settings.HUB_PUBLIC_URL}{reverse('builds:signing_key')}"
