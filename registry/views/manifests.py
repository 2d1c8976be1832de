"""Manifest GET/HEAD/PUT/DELETE: exact stored bytes, Accept honoured, pulls counted."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from oci import mediatypes
from registry import pulls, ratelimits
from registry.errors import ManifestInvalid, ManifestTooLarge, ManifestUnknown, NameUnknown, Unsupported
from registry.models import Manifest
from registry.services import manifests as manifest_service
from registry.services.uploads import IncompleteBody, request_body
from registry.views.base import RegistryView, empty


def _add_headers(response: HttpResponse, headers: dict[str, str]) -> None:
    for name, value in headers.items():
        response[name] = value


def accepted_media_types(request: HttpRequest) -> set[str]:
    """Every media type in every Accept header (clients send several headers; WSGI joins them)."""
    raw = request.META.get("HTTP_ACCEPT", "")
    return {part.split(";", 1)[0].strip().lower() for part in raw.split(",") if part.strip()}


def _acceptable(manifest: Manifest, accepted: set[str]) -> bool:
    # Docker schema 2 and OCI are interchangeable for old clients only by conversion, which we don't do.
    return not accepted or "*/*" in accepted or manifest.media_type in accepted


class ManifestView(RegistryView):
    http_method_names = ["get", "head", "put", "delete"]
    creates_repository = True
    lazy_repository_methods = frozenset({"GET", "HEAD"})

    mirror_state: str | None = None

    def _read(self, reference: str) -> Manifest:
        """The manifest a tag or digest names, found with the repository in one query (hot path)."""
        if self.mirror_prefix is not None:
            return self._read_mirrored(reference)
        if manifest_service.is_valid_reference(reference):
            manifest = manifest_service.manifest_fetch(
                namespace=self.namespace_name, name=self.repository_name, reference=reference
            )
            if manifest is not None:
                return manifest
        # Slow path, for a precise error: which of the repository and the manifest is unknown?
        self.repository = self.find_repository()
        if self.repository is None:
            raise NameUnknown(detail={"name": self.display_name})
        return manifest_service.manifest_lookup(repository=self.repository, reference=reference)

    def _read_mirrored(self, reference: str) -> Manifest:
        """Pull through (registry/mirror/service.py): cached, revalidated or fetched from the upstream."""
        from registry.mirror import service as mirror

        if not manifest_service.is_valid_reference(reference):
            raise manifest_service.unknown_reference(reference)
        self.repository = self.find_repository()

        def before_fetch() -> None:  # a miss spends the puller's budget: refuse before fetching
            budget = ratelimits.pull_budget(self.request, self.access)
            if budget is None:
                return
            if self.request.method == "HEAD":  # a HEAD never counts otherwise; fetching does
                ratelimits.take_pull(budget)
            elif ratelimits.peek_pulls(budget).remaining <= 0:
                ratelimits.take_pull(budget)  # raises TOOMANYREQUESTS with the usual message and headers

        served = mirror.serve_manifest(prefix=self.mirror_prefix, name=self.repository_name,
                                       repository=self.repository, reference=reference, before_fetch=before_fetch)
        self.mirror_state = served.state
        return served.manifest

    def _negotiate(self, request: HttpRequest, manifest: Manifest) -> Manifest:
        accepted = accepted_media_types(request)
        if _acceptable(manifest, accepted):
            return manifest
        if manifest.media_type in mediatypes.INDEX_TYPES:
            # Like the reference registry: a client that cannot read an index gets linux/amd64.
            for platform in manifest.platforms:
                if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                    child = Manifest.objects.filter(repository_id=manifest.repository_id,
                                                    digest=platform["digest"]).first()
                    if child is None and self.mirror_prefix is not None:
                        child = self._read_mirrored(platform["digest"])
                    if child is not None and _acceptable(child, accepted):
                        return child
        raise ManifestUnknown(
            f"the manifest is a {manifest.media_type}, which the client does not accept",
            detail={"accepted": sorted(accepted)[:10]},
        )

    def _response(self, manifest: Manifest, *, head: bool) -> HttpResponse:
        content = bytes(manifest.content)
        response = HttpResponse(b"" if head else content, content_type=manifest.media_type)
        response["Content-Length"] = str(len(content))
        response["Docker-Content-Digest"] = manifest.digest
        response["ETag"] = f'"{manifest.digest}"'
        if self.mirror_state is not None:
            from registry.mirror.service import mirror_headers

            _add_headers(response, mirror_headers(self.mirror_state))
        return response

    def head(self, request: HttpRequest, reference: str) -> HttpResponse:
        response = self._response(self._negotiate(request, self._read(reference)), head=True)
        budget = ratelimits.pull_budget(request, self.access)
        if budget is not None:  # HEAD never counts: it tells what is left
            _add_headers(response, ratelimits.peek_pulls(budget).headers())
        return response

    def get(self, request: HttpRequest, reference: str) -> HttpResponse:
        served = self._negotiate(request, self._read(reference))
        counted = pulls.is_pull(request=request, repository_id=served.repository_id, reference=reference,
                                manifest=served)
        budget = ratelimits.pull_budget(request, self.access)
        usage = None
        if budget is not None:
            usage = ratelimits.take_pull(budget) if counted else ratelimits.peek_pulls(budget)
        if counted:
            pulls.record_pull(repository_id=served.repository_id, reference=reference)
        response = self._response(served, head=False)
        if usage is not None:
            _add_headers(response, usage.headers())
        return response

    def put(self, request: HttpRequest, reference: str) -> HttpResponse:
        limit = settings.REGISTRY_MAX_MANIFEST_BYTES
        body = request_body(request)
        if body.length is not None and body.length > limit:
            raise ManifestTooLarge(detail={"limit": limit})
        data = bytearray()
        try:
            for chunk in body.chunks:
                data += chunk
                if len(data) > limit:
                    raise ManifestTooLarge(detail={"limit": limit})
        except (IncompleteBody, OSError) as exc:
            raise ManifestInvalid(f"incomplete request body: {exc}") from None
        manifest = manifest_service.manifest_put(
            repository=self.repository, reference=reference, body=bytes(data),
            content_type=request.META.get("CONTENT_TYPE"), user=self.access.user,
        )
        headers = {
            "Location": f"/v2/{self.url_name()}/manifests/{manifest.digest}",
            "Docker-Content-Digest": manifest.digest,
        }
        if manifest.subject_digest:
            headers["OCI-Subject"] = manifest.subject_digest
        return empty(201, headers)

    def delete(self, request: HttpRequest, reference: str) -> HttpResponse:
        if not manifest_service.is_valid_reference(reference):
            raise manifest_service.unknown_reference(reference)
        if manifest_service.is_digest_reference(reference):
            manifest = manifest_service.manifest_lookup(repository=self.repository, reference=reference)
            manifest_service.manifest_delete(repository=self.repository, manifest=manifest, user=self.access.user)
        else:
            if not reference:
                raise Unsupported()
            manifest_service.tag_delete(repository=self.repository, tag_name=reference, user=self.access.user)
        return empty(202)
