"""What pages and the Hub API read of the registry's content: tags, per-platform images, referrers, pushes.

Faces (views, API views) read registry content through this module (as Quay's registry_model);
everything is bounded by the page it serves (limits, paging, one repository's rows).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import Namespace
from lib.sql import column, model_from_row, table
from oci.manifests import InvalidManifest, image_platform, parse_manifest
from oci.names import ATTACHMENT_TAG_RE
from registry.blobstore import blob_store
from registry.models import Blob, Manifest, RepositoryBlob, Tag
from registry.services.manifests import referrers
from repositories.models import Collaborator, Repository, Star
from repositories.permissions import Actor
from repositories.selectors import repositories_visible_to

CONFIG_LIMIT = 1 << 20
TAG_SORTS = {"newest": ("-pushed_at", "name"), "name": ("name",), "oldest": ("pushed_at", "name")}


# --- the blob GET and HEAD ------------------------------------------------------------------------


def linked_blob(*, namespace: str, name: str, digest: str) -> Blob | None:
    """The blob `digest` if it is linked to repository `namespace/name`, found with the repository in one
    hand-written query: blob GET and HEAD run once per layer of every pull, and building the two ORM
    queries they made (the repository, then the link) cost about ten times executing them."""
    with connection.cursor() as cursor:
        cursor.execute(_linked_blob_statement(connection.vendor), [namespace, name, digest])
        row = cursor.fetchone()
    return model_from_row(Blob, row) if row is not None else None


@functools.cache
def _linked_blob_statement(vendor: str) -> str:
    """Every column of the blob row, joined through its link to the repository and namespace names;
    identifiers from the models' metadata (lib.sql), composed once per kind of database."""
    columns = ", ".join(f"b.{connection.ops.quote_name(field.column)}" for field in Blob._meta.concrete_fields)
    return (f"SELECT {columns} FROM {table(Blob)} b"  # noqa: S608 - identifiers from model metadata
            f" JOIN {table(RepositoryBlob)} l ON l.{column(RepositoryBlob, 'blob')} = b.{column(Blob, 'id')}"
            f" JOIN {table(Repository)} r ON r.{column(Repository, 'id')} = l.{column(RepositoryBlob, 'repository')}"
            f" JOIN {table(Namespace)} n ON n.{column(Namespace, 'id')} = r.{column(Repository, 'namespace')}"
            f" WHERE n.{column(Namespace, 'name')} = %s AND r.{column(Repository, 'name')} = %s"
            f" AND b.{column(Blob, 'digest')} = %s")


def repository_named(*, namespace: str, name: str) -> Repository | None:
    """Repository `namespace/name` with its namespace, in one hand-written query: every registry request
    that reads or writes a repository asks for it, and building the ORM's join cost several times
    running it."""
    with connection.cursor() as cursor:
        cursor.execute(_repository_named_statement(connection.vendor), [namespace, name])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(Repository._meta.concrete_fields)
    repository = model_from_row(Repository, row[:width])
    repository.namespace = model_from_row(Namespace, row[width:])
    return repository


@functools.cache
def _repository_named_statement(vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join([*(f"r.{quote(field.column)}" for field in Repository._meta.concrete_fields),
                         *(f"n.{quote(field.column)}" for field in Namespace._meta.concrete_fields)])
    return (f"SELECT {columns} FROM {table(Repository)} r"  # noqa: S608 - identifiers from model metadata
            f" JOIN {table(Namespace)} n ON n.{column(Namespace, 'id')} = r.{column(Repository, 'namespace')}"
            f" WHERE n.{column(Namespace, 'name')} = %s AND r.{column(Repository, 'name')} = %s")


# --- dashboard ------------------------------------------------------------------------------------


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


# --- tags -----------------------------------------------------------------------------------------


def listed_tags() -> QuerySet[Tag]:
    """The tags people are shown, on pages and in the Hub API (attachment tags such as `sha256-….sig`
    never are), with their manifests and pushers."""
    return Tag.objects.exclude(name__regex=rf"^{ATTACHMENT_TAG_RE.pattern}$").select_related("manifest", "pushed_by")


def repository_tags(repository: Repository, *, query: str = "", sort: str = "newest") -> QuerySet[Tag]:
    """The repository's listed tags with their manifests' digests, platforms and sizes but not their bytes."""
    tags = listed_tags().filter(repository=repository).defer("manifest__content")
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
            config = blob_store.read_small(parsed.config.digest, CONFIG_LIMIT)
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
