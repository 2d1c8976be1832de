"""One class per OCI Distribution error code; one renderer writes the JSON envelope.

Registry views raise these; they never build error JSON themselves.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


class RegistryError(Exception):
    code = "UNKNOWN"
    status = 500
    message = "unknown error"

    def __init__(self, message: str | None = None, detail: object = None, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.detail = detail
        self.headers = headers or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def response(self, *, head: bool = False) -> HttpResponse:
        body = b"" if head else json.dumps({"errors": [self.as_dict()]}).encode()
        response = HttpResponse(body, status=self.status, content_type="application/json")
        if head:
            response["Content-Length"] = "0"
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        for name, value in self.headers.items():
            response[name] = value
        return response


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, status, message = "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestTooLarge(RegistryError):
    code, status, message = "MANIFEST_INVALID", 413, "manifest too large"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class TagInvalid(RegistryError):
    code, status, message = "TAG_INVALID", 400, "manifest tag did not match URI"


class Unauthorized(RegistryError):
    code, status, message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 405, "the operation is unsupported"


class RangeInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"


class TagImmutable(RegistryError):
    """Moving or deleting a tag the repository's immutable-tag rules protect."""

    code, status, message = "DENIED", 403, "the tag is immutable"


class TooManyRequests(RegistryError):
    code, status, message = "TOOMANYREQUESTS", 429, "too many requests"


class PaginationNumberInvalid(RegistryError):
    code, status, message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"
