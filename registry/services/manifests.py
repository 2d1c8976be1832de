"""Manifest push, lookup and delete; tags; attachments (signatures, SBOMs) follow their subject."""

from __future__ import annotations

import functools
import hashlib

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import audit
from accounts.models import Namespace
from lib.sql import column, model_from_row, selected_fields, table
from oci import mediatypes
from oci.digests import InvalidDigest, is_valid_digest, parse_digest, sha256_digest
from oci.manifests import MAX_SIZE, Descriptor, InvalidManifest, ParsedManifest, image_platform, parse_manifest
from oci.names import is_attachment_tag, is_valid_tag
from registry.blobstore import blob_store
from registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    TagImmutable,
    TagInvalid,
)
from registry.manifest_cache import manifest_cache
from registry.models import Blob, Manifest, ManifestBlob, ManifestChild, Tag
from registry.signals import image_pushed, tag_deleted
from repositories.immutability import ALL_TAGS, immutable_tags_of
from repositories.models import Repository

MAX_CONFIG_BYTES = 4 * 1024 * 1024


def is_digest_reference(reference: str) -> bool:
    return ":" in reference


def is_valid_reference(reference: str) -> bool:
    """A tag or a digest: anything else names nothing (and never reaches a query)."""
    return is_valid_digest(reference) if is_digest_reference(reference) else is_valid_tag(reference)


def unknown_reference(reference: str) -> ManifestUnknown:
    """Reading or deleting by a reference that is neither a tag nor a digest: unknown, not a bad request.

    That is what the OCI conformance suite expects of GET and HEAD, and what the reference
    registry answers (its route does not match such a reference). A PUT says why instead.
    """
    return ManifestUnknown(detail={"reference": reference[:200], "reason": "neither a valid tag nor a digest"})


def manifest_lookup(*, repository: Repository, reference: str) -> Manifest:
    """The manifest a tag or digest names in `repository`, or MANIFEST_UNKNOWN."""
    if not is_valid_reference(reference):
        raise unknown_reference(reference)
    if is_digest_reference(reference):
        manifest = Manifest.objects.filter(repository=repository, digest=reference).first()
    else:
        tag = Tag.objects.filter(repository=repository, name=reference).select_related("manifest").first()
        manifest = tag.manifest if tag is not None else None
    if manifest is None:
        raise ManifestUnknown(detail={"reference": reference[:200]})
    return manifest


# What serving a manifest reads (the view, content negotiation, pull counting); the rest of the row is
# deferred, loaded on first access (lib.sql.model_from_row), never a silent default.
_FETCHED_FIELDS = ("id", "repository", "digest", "media_type", "content", "subject_digest", "platforms")
_CONTENT = _FETCHED_FIELDS.index("content")


@functools.cache
def _fetch_statement(*, by_tag: bool, vendor: str) -> str:
    """The served fields of the manifest row, joined down from the namespace and repository names;
    identifiers from the models' metadata (lib.sql), composed once per kind of database."""
    columns = ", ".join(f"m.{connection.ops.quote_name(field.column)}"
                        for field in selected_fields(Manifest, _FETCHED_FIELDS))
    sql = (f"SELECT {columns} FROM {table(Manifest)} m"  # noqa: S608 - identifiers from model metadata
           f" JOIN {table(Repository)} r ON r.{column(Repository, 'id')} = m.{column(Manifest, 'repository')}"
           f" JOIN {table(Namespace)} n ON n.{column(Namespace, 'id')} = r.{column(Repository, 'namespace')}")
    if by_tag:
        sql += (f" JOIN {table(Tag)} t ON t.{column(Tag, 'manifest')} = m.{column(Manifest, 'id')}"
                f" WHERE n.{column(Namespace, 'name')} = %s AND r.{column(Repository, 'name')} = %s"
                f" AND t.{column(Tag, 'name')} = %s AND t.{column(Tag, 'repository')} = r.{column(Repository, 'id')}")
    else:
        sql += (f" WHERE n.{column(Namespace, 'name')} = %s AND r.{column(Repository, 'name')} = %s"
                f" AND m.{column(Manifest, 'digest')} = %s")
    return sql


def manifest_fetch(*, namespace: str, name: str, reference: str) -> Manifest | None:
    """The manifest `namespace/name:reference` names, in one query (or remembered: registry/manifest_cache.py), or None.

    The manifest GET path is the hottest of the registry: one hand-written join instead of the
    ORM's query building (which costs more than the query itself here). It reads the fields serving
    needs; the others are deferred (loaded if something reads them), never silent defaults.
    """
    by_tag = not is_digest_reference(reference)

    def load() -> tuple | None:
        with connection.cursor() as cursor:
            cursor.execute(_fetch_statement(by_tag=by_tag, vendor=connection.vendor), [namespace, name, reference])
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        row[_CONTENT] = bytes(row[_CONTENT])  # PostgreSQL gives a memoryview; callers hash and serve bytes
        return tuple(row)

    row = manifest_cache.fetch((namespace, name, reference), load, size_of=lambda row: len(row[_CONTENT]))
    # A fresh instance each time (its fields parsed from the row): nothing a caller changes is shared.
    return model_from_row(Manifest, row, _FETCHED_FIELDS) if row is not None else None


def _platforms_of_image(parsed: ParsedManifest, digest: str) -> list[dict]:
    config = parsed.config
    platform = {"os": "", "architecture": "", "variant": ""}
    if config is not None and config.media_type in mediatypes.IMAGE_CONFIG_TYPES and config.size <= MAX_CONFIG_BYTES:
        try:
            data = blob_store.read_small(config.digest, MAX_CONFIG_BYTES)
        except (FileNotFoundError, OSError):
            data = None
        if data is not None:
            details = image_platform(data)
            platform = {key: details[key] for key in ("os", "architecture", "variant")}
    if not (platform["os"] or platform["architecture"]):
        return []  # an artifact, not a runnable image
    layers_size = sum(layer.size for layer in parsed.layers)
    return [{**platform, "digest": digest, "size": layers_size}]


def _platforms_of_index(parsed: ParsedManifest, children: dict[str, Manifest]) -> list[dict]:
    platforms = []
    for descriptor in parsed.manifests:
        child = children.get(descriptor.digest)
        platform = descriptor.platform or {}
        if not platform and child is not None and child.platforms:
            platform = child.platforms[0]
        if not platform:
            continue  # attestation manifests and the like carry no platform
        platforms.append({
            "os": platform.get("os", ""),
            "architecture": platform.get("architecture", ""),
            "variant": platform.get("variant", ""),
            "digest": descriptor.digest,
            "size": child.total_size if child is not None else descriptor.size,
        })
    return platforms


def _size_mismatch(where: str, descriptor: Descriptor, stored: int, what: str) -> ManifestInvalid:
    return ManifestInvalid(
        f"{where} declares size {descriptor.size} for {descriptor.digest}, but the stored {what} "
        f"has {stored} bytes",
        detail={"digest": descriptor.digest, "size": descriptor.size, "stored_size": stored},
    )


def _check_declared_sizes(parsed: ParsedManifest, *, blobs: dict[str, Blob], children: dict[str, Manifest],
                          subject_size: int | None) -> None:
    """Every descriptor's size is the size of what it names here: no manifest promises other sizes.

    Like every check on a body the client sent, a mismatch is MANIFEST_INVALID (the blob exists;
    MANIFEST_BLOB_UNKNOWN is for one that does not).
    """
    named = [("config", parsed.config)] if parsed.config is not None else []
    named += [(f"layers[{i}]", layer) for i, layer in enumerate(parsed.layers)]
    for where, descriptor in named:
        stored = blobs[descriptor.digest].size
        if descriptor.size != stored:
            raise _size_mismatch(where, descriptor, stored, "blob")
    for i, descriptor in enumerate(parsed.manifests):
        stored = children[descriptor.digest].size
        if descriptor.size != stored:
            raise _size_mismatch(f"manifests[{i}]", descriptor, stored, "manifest")
    if parsed.subject is not None and subject_size is not None and parsed.subject.size != subject_size:
        raise _size_mismatch("subject", parsed.subject, subject_size, "manifest")


def manifest_put(*, repository: Repository, reference: str, body: bytes, content_type: str | None,
                 user) -> Manifest:
    """Store a pushed manifest (exact bytes) and point the tag at it when `reference` is a tag."""
    tag_name = None
    if is_digest_reference(reference):
        try:
            claimed = parse_digest(reference)
        except InvalidDigest:
            raise DigestInvalid("invalid digest", detail={"digest": reference[:200]}) from None
        actual = f"{claimed.algorithm}:{hashlib.new(claimed.algorithm, body).hexdigest()}"
        if actual != str(claimed):
            raise DigestInvalid(detail={"expected": str(claimed), "computed": actual})
        if claimed.algorithm != "sha256":
            raise DigestInvalid("manifests are addressed by sha256", detail={"digest": str(claimed)})
    else:
        if not is_valid_tag(reference):
            raise TagInvalid(detail={"tag": reference[:200]})
        tag_name = reference
    digest = sha256_digest(body)
    try:
        parsed = parse_manifest(body, content_type)
    except InvalidManifest as exc:
        raise ManifestInvalid(str(exc)) from None

    blob_digests = parsed.blob_references()
    blobs = {blob.digest: blob for blob in Blob.objects.filter(digest__in=blob_digests,
                                                               repository_links__repository=repository)}
    for needed in blob_digests:
        if needed not in blobs:
            raise ManifestBlobUnknown(detail={"digest": needed})
    child_digests = parsed.manifest_references()
    children = {m.digest: m for m in Manifest.objects.filter(repository=repository, digest__in=child_digests)}
    for needed in child_digests:
        if needed not in children:
            raise ManifestBlobUnknown(detail={"digest": needed})

    subject_size = None
    if parsed.subject is not None:  # a subject may be pushed later; compare its size only when it is here
        subject_size = (Manifest.objects.filter(repository=repository, digest=parsed.subject.digest)
                        .values_list("size", flat=True).first())
    _check_declared_sizes(parsed, blobs=blobs, children=children, subject_size=subject_size)

    if parsed.is_index:
        platforms = _platforms_of_index(parsed, children)
        total_size = sum(p["size"] for p in platforms)
    else:
        platforms = _platforms_of_image(parsed, digest)
        total_size = sum(layer.size for layer in parsed.layers) + (parsed.config.size if parsed.config else 0)
    if total_size > MAX_SIZE:  # the parser bounds an image's sum; an index adds up its children's totals
        raise ManifestInvalid(f"the sizes this manifest names add up to more than {MAX_SIZE} bytes")

    now = timezone.now()
    is_attachment = parsed.subject is not None or (tag_name is not None and is_attachment_tag(tag_name))
    with transaction.atomic():
        # Lock what the manifest names: garbage collection locks the same rows before deleting.
        if blobs:
            still_there = set(Blob.objects.select_for_update().filter(pk__in=[b.pk for b in blobs.values()])
                              .values_list("digest", flat=True))
            for needed in blob_digests:
                if needed not in still_there:
                    raise ManifestBlobUnknown(detail={"digest": needed})
        existing = Manifest.objects.select_for_update().filter(repository=repository, digest=digest).first()
        manifest, created = (existing, False) if existing is not None else Manifest.objects.get_or_create(
            repository=repository, digest=digest,
            defaults={
                "media_type": parsed.media_type, "artifact_type": parsed.artifact_type or "",
                "content": body, "size": len(body),
                "subject_digest": parsed.subject.digest if parsed.subject else "",
                "config_digest": parsed.config.digest if parsed.config else "",
                "annotations": parsed.annotations, "platforms": platforms, "total_size": total_size,
                "created_at": now, "pushed_by": user,
            },
        )
        if repository.is_pending:  # the push that created the repository pushed its first manifest
            Repository.objects.filter(pk=repository.pk).update(is_pending=False)
            repository.is_pending = False
        if created:
            ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in blobs.values()])
            ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=c) for c in children.values()])
        if blobs:
            Blob.objects.filter(pk__in=[b.pk for b in blobs.values()]).update(last_touched_at=now)
        if tag_name is not None:
            rule = immutable_tags_of(repository).rule_for(tag_name)
            if rule is None:
                tag, _ = Tag.objects.update_or_create(
                    repository=repository, name=tag_name,
                    defaults={"manifest": manifest, "pushed_at": now, "pushed_by": user},
                )
            else:
                tag = _keep_immutable_tag(repository, tag_name, rule, manifest, now, user)
            if not is_attachment:
                Repository.objects.filter(pk=repository.pk).update(last_pushed_at=now)
                repository.last_pushed_at = now
                audit.record("repo.tag.push", account=repository.namespace, name=f"{repository.full_name}:{tag_name}",
                             actor=user, data={"digest": manifest.digest})
                image_pushed.send(sender=Manifest, repository=repository, tag=tag, manifest=manifest, pusher=user)
    return manifest


def _keep_immutable_tag(repository: Repository, tag_name: str, rule: str, manifest: Manifest, now, user) -> Tag:
    """Create an immutable tag, or accept the same digest again; moving it is refused. Creating it is
    an insert (two first pushes of the tag at once: one wins, the other then finds it and compares)."""
    tag, created = Tag.objects.get_or_create(
        repository=repository, name=tag_name, defaults={"manifest": manifest, "pushed_at": now, "pushed_by": user})
    if not created:
        tag = Tag.objects.select_for_update().select_related("manifest").get(pk=tag.pk)
        if tag.manifest_id != manifest.pk:
            raise TagImmutable(
                f'tag "{tag_name}" is immutable (rule {_rule_text(rule)}) and already names {tag.manifest.digest}: '
                "push this image under a new tag",
                detail={"tag": tag_name, "rule": rule, "digest": tag.manifest.digest})
    return tag


def _rule_text(rule: str) -> str:
    return "every tag" if rule == ALL_TAGS else f'"{rule}"'


def _refuse_deleting_immutable(repository: Repository, tag_names: list[str]) -> None:
    protection = immutable_tags_of(repository)
    for name in tag_names:
        rule = protection.rule_for(name)
        if rule is not None:
            raise TagImmutable(f'tag "{name}" is immutable (rule {_rule_text(rule)}) and cannot be deleted',
                               detail={"tag": name, "rule": rule})


def _attachment_tag_filter(digest: str) -> Q:
    algorithm, _, hexdigest = digest.partition(":")
    return Q(name=f"{algorithm}-{hexdigest}") | Q(name__startswith=f"{algorithm}-{hexdigest}.")


def manifest_delete(*, repository: Repository, manifest: Manifest, user) -> None:
    """Delete a manifest, its tags and everything attached to it (referrers, `sha256-….sig` tags)."""
    with transaction.atomic():
        doomed = [manifest]
        seen = {manifest.pk}
        while doomed:
            current = doomed.pop()
            tags = list(Tag.objects.select_for_update().filter(repository=repository, manifest=current))
            _refuse_deleting_immutable(repository, [tag.name for tag in tags])
            for tag in tags:
                if not is_attachment_tag(tag.name):
                    audit.record("repo.tag.delete", account=repository.namespace,
                                 name=f"{repository.full_name}:{tag.name}", actor=user,
                                 data={"digest": current.digest})
                    tag_deleted.send(sender=Tag, repository=repository, tag_name=tag.name,
                                     digest=current.digest, user=user)
            attached = Manifest.objects.filter(repository=repository).filter(
                Q(subject_digest=current.digest)
                | Q(pk__in=Tag.objects.filter(repository=repository).filter(
                    _attachment_tag_filter(current.digest)).values("manifest_id"))
            )
            for other in attached:
                if other.pk not in seen:
                    seen.add(other.pk)
                    doomed.append(other)
        Manifest.objects.filter(pk__in=seen).delete()


def tag_delete(*, repository: Repository, tag_name: str, user) -> None:
    with transaction.atomic():
        tag = Tag.objects.select_for_update().filter(repository=repository, name=tag_name).first()
        if tag is None:
            raise ManifestUnknown(detail={"tag": tag_name[:200]})
        _refuse_deleting_immutable(repository, [tag_name])
        digest = tag.manifest.digest
        tag.delete()
        if not is_attachment_tag(tag_name):
            audit.record("repo.tag.delete", account=repository.namespace, name=f"{repository.full_name}:{tag_name}",
                         actor=user, data={"digest": digest})
            tag_deleted.send(sender=Tag, repository=repository, tag_name=tag_name, digest=digest, user=user)


def referrers(*, repository: Repository, digest: str, artifact_type: str | None) -> list[dict]:
    """Descriptors of the manifests whose subject is `digest` (OCI 1.1 referrers API)."""
    manifests = Manifest.objects.filter(repository=repository, subject_digest=digest).order_by("created_at", "pk")
    if artifact_type:
        manifests = manifests.filter(artifact_type=artifact_type)
    descriptors = []
    for manifest in manifests.only("media_type", "digest", "size", "artifact_type", "annotations"):
        descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size}
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        descriptors.append(descriptor)
    return descriptors

