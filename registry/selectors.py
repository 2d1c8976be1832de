"""What pages and the Hub API read of the registry's content: tags, per-platform images, referrers, pushes.

Faces (views, API views) read registry content through this module (as Quay's registry_model);
everything is bounded by the page it serves (limits, paging, one repository's rows).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import Namespace, User
from lib.sql import column, columns_of, model_from_row, table
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
    return (f"SELECT {columns_of(Blob, 'b')} FROM {table(Blob)} b"  # noqa: S608 - identifiers from model metadata
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
    return (f"SELECT {columns_of(Repository, 'r')}, {columns_of(Namespace, 'n')} FROM {table(Repository)} r"  # noqa: S608 - identifiers from model metadata
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
    """Pushes, stars and new collaborators in the user's namespaces, newest first.

    The ids of the repositories of those namespaces the user may see (repositories_visible_to) are read
    first, a small list, so that the database finds each kind's rows through its repository index and
    sorts only those (given as a subquery, PostgreSQL guessed thousands of ids and read the whole star
    table, 170 ms at 1,000,000 repositories). Then one hand-written statement takes the newest `limit`
    of each kind, merges them and joins each event's repository name and actor's username: the three
    ORM queries it replaces each built joined model rows that the merge mostly threw away."""
    by_id = {namespace.pk: namespace for namespace in namespaces}
    if not by_id:
        return []
    visible = list(repositories_visible_to(Actor.for_user(user)).filter(namespace_id__in=list(by_id))
                   .order_by().values_list("pk", flat=True))  # unordered: the default order joins namespaces
    if not visible:
        return []
    ids = visible if connection.vendor == "postgresql" else json.dumps(visible)
    with connection.cursor() as cursor:
        cursor.execute(_recent_activity_statement(connection.vendor), [ids, limit, ids, limit, ids, limit, limit])
        rows = cursor.fetchall()
    events = []
    for kind, when, repository_id, name, namespace_id, actor_id, username, detail in rows:
        repository = model_from_row(Repository, (repository_id, namespace_id, name), _ACTIVITY_REPOSITORY)
        repository.namespace = by_id[namespace_id]
        actor = model_from_row(User, (actor_id, username), _ACTIVITY_ACTOR) if actor_id is not None else None
        events.append(Activity(_activity_time(when), _ACTIVITY_KINDS[kind], repository, actor, detail))
    return events


_ACTIVITY_KINDS = {0: "push", 1: "star", 2: "collaborator"}  # the rank also orders events at the same instant
# In the models' field order: Model.from_db places a partial row's values by that order, not by the names.
_ACTIVITY_REPOSITORY = ("id", "namespace", "name")
_ACTIVITY_ACTOR = ("id", "username")


def _activity_time(value) -> dt.datetime:
    """A time from the statement as the ORM would give it (SQLite returns text)."""
    return model_from_row(Tag, (value,), ("pushed_at",)).pushed_at


@functools.cache
def _recent_activity_statement(vendor: str) -> str:
    """Each kind's newest `%s` among the repositories whose ids are the parameter before it (a list on
    PostgreSQL, a JSON array on SQLite), merged: the newest `%s` with their repositories and actors.
    Identifiers from the models' metadata (lib.sql)."""
    among = "= ANY(%s)" if vendor == "postgresql" else "IN (SELECT value FROM json_each(%s))"

    def newest(rank: int, model, when: str, actor: str, detail: str, where: str = "") -> str:
        alias = f"e{rank}"
        return (f"SELECT * FROM (SELECT {rank} AS kind, {alias}.{column(model, when)} AS happened,"  # noqa: S608
                f" {alias}.{column(model, 'repository')} AS repository_id, {alias}.{column(model, actor)} AS actor_id,"
                f" {detail} AS detail FROM {table(model)} {alias}"
                f" WHERE {alias}.{column(model, 'repository')} {among}{where}"
                f" ORDER BY {alias}.{column(model, when)} DESC LIMIT %s) {alias}s")

    pushes = newest(0, Tag, "pushed_at", "pushed_by", f"e0.{column(Tag, 'name')}",
                    f" AND e0.{column(Tag, 'name')} NOT LIKE 'sha256-%%'")
    stars = newest(1, Star, "created_at", "user", "''")
    grants = newest(2, Collaborator, "created_at", "user", "''")
    return (f"SELECT e.kind, e.happened, r.{column(Repository, 'id')}, r.{column(Repository, 'name')},"  # noqa: S608
            f" r.{column(Repository, 'namespace')}, u.{column(User, 'id')}, u.{column(User, 'username')}, e.detail"
            f" FROM ({pushes} UNION ALL {stars} UNION ALL {grants}) e"
            f" JOIN {table(Repository)} r ON r.{column(Repository, 'id')} = e.repository_id"
            f" LEFT JOIN {table(User)} u ON u.{column(User, 'id')} = e.actor_id"
            " ORDER BY e.happened DESC, e.kind LIMIT %s")


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
