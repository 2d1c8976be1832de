"""Strict validation of untrusted image manifests and indexes (OCI image-spec 1.1, Docker schema 2).

`parse_manifest` never lets a bad body escape as anything but InvalidManifest with a message a
person can act on: wrong types, huge numbers, missing fields, non-object JSON, invalid UTF-8,
duplicate keys and deep nesting all end there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from oci import mediatypes
from oci.digests import InvalidDigest, parse_digest

MAX_SIZE = 2**63 - 1  # sizes are int64 in every client
MAX_HISTORY = 1000
MAX_HISTORY_TEXT = 4096

# RFC 6838 restricted names: `type/subtype`, which is what OCI descriptors must carry.
MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_BAD_CHARACTERS_RE = re.compile("[\x00\ud800-\udfff]")


class InvalidManifest(ValueError):
    """The body is not a manifest this registry accepts; the message says why."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    # Index children only: {"os", "architecture"} plus "variant" and "os.version" when given.
    platform: dict[str, str] | None = None


@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    artifact_type: str | None
    config: Descriptor | None
    layers: list[Descriptor]
    manifests: list[Descriptor]
    subject: Descriptor | None
    annotations: dict[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEX_TYPES

    def blob_references(self) -> list[str]:
        """Digests of the blobs this manifest needs: its config, then its layers (no duplicates)."""
        digests = ([self.config.digest] if self.config is not None else []) + [d.digest for d in self.layers]
        return list(dict.fromkeys(digests))

    def manifest_references(self) -> list[str]:
        """Digests of the child manifests of an index (no duplicates)."""
        return list(dict.fromkeys(d.digest for d in self.manifests))


# --- JSON decoding --------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise InvalidManifest(f"manifest is not valid JSON: {name} is not allowed")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidManifest(f"manifest is not valid JSON: duplicate key {key[:100]!r}")
        result[key] = value
    return result


def _decode_json(body: bytes, what: str) -> Any:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidManifest(f"{what} must be bytes")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidManifest(f"{what} is not valid UTF-8 (byte {error.start})") from None
    if text.startswith("\ufeff"):
        raise InvalidManifest(f"{what} starts with a byte order mark")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except InvalidManifest:
        raise
    except RecursionError:
        raise InvalidManifest(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise InvalidManifest(f"{what} is not valid JSON: {error.msg} at line {error.lineno} "
                              f"column {error.colno}") from None
    except ValueError:  # e.g. an integer with more digits than Python converts
        raise InvalidManifest(f"{what} is not valid JSON: a number is too large") from None


# --- Field validators -----------------------------------------------------------------------


def _string(value: Any, path: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidManifest(f"{path} must be a string, not {_type_name(value)}")
    if not value and not empty_ok:
        raise InvalidManifest(f"{path} must not be empty")
    if _BAD_CHARACTERS_RE.search(value):
        raise InvalidManifest(f"{path} contains a NUL character or an unpaired surrogate")
    return value


def _media_type(value: Any, path: str) -> str:
    text = _string(value, path)
    if not MEDIA_TYPE_RE.fullmatch(text):
        raise InvalidManifest(f"{path} {text[:100]!r} is not a media type (type/subtype)")
    return text


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{path} must be an object, not {_type_name(value)}")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidManifest(f"{path} must be an array, not {_type_name(value)}")
    return value


def _string_map(value: Any, path: str) -> dict[str, str]:
    mapping = _object(value, path)
    for key, item in mapping.items():
        _string(key, f"{path} key", empty_ok=False)
        _string(item, f"{path}[{key[:100]!r}]", empty_ok=True)
    return dict(mapping)


def _string_list(value: Any, path: str) -> tuple[str, ...]:
    return tuple(_string(item, f"{path}[{i}]") for i, item in enumerate(_array(value, path)))


def _size(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidManifest(f"{path} must be an integer, not {_type_name(value)}")
    if value < 0:
        raise InvalidManifest(f"{path} must not be negative")
    if value > MAX_SIZE:
        raise InvalidManifest(f"{path} is too large")
    return value


def _platform(value: Any, path: str) -> dict[str, str]:
    platform = _object(value, path)
    for required in ("architecture", "os"):
        if required not in platform:
            raise InvalidManifest(f"{path}.{required} is required")
    result = {"os": _string(platform["os"], f"{path}.os"),
              "architecture": _string(platform["architecture"], f"{path}.architecture")}
    if platform.get("variant") is not None:
        result["variant"] = _string(platform["variant"], f"{path}.variant", empty_ok=True)
    if platform.get("os.version") is not None:
        result["os.version"] = _string(platform["os.version"], f"{path}.os.version", empty_ok=True)
    for key in ("os.features", "features"):
        if platform.get(key) is not None:
            _string_list(platform[key], f"{path}.{key}")
    return result


def _check_embedded_data(value: Any, path: str, digest: str, size: int) -> None:
    text = _string(value, f"{path}.data", empty_ok=True)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidManifest(f"{path}.data is not valid base64") from None
    algorithm, _, expected = digest.partition(":")
    if len(data) != size or hashlib.new(algorithm, data).hexdigest() != expected:
        raise InvalidManifest(f"{path}.data does not match the descriptor's digest and size")


def _descriptor(value: Any, path: str, *, with_platform: bool = False) -> Descriptor:
    raw = _object(value, path)
    for required in ("mediaType", "digest", "size"):
        if required not in raw:
            raise InvalidManifest(f"{path}.{required} is required")
    media_type = _media_type(raw["mediaType"], f"{path}.mediaType")
    try:
        digest = str(parse_digest(raw["digest"]))
    except InvalidDigest as error:
        raise InvalidManifest(f"{path}.digest: {error}") from None
    size = _size(raw["size"], f"{path}.size")
    if raw.get("data") is not None:
        _check_embedded_data(raw["data"], path, digest, size)
    urls = _string_list(raw["urls"], f"{path}.urls") if raw.get("urls") is not None else ()
    annotations = _string_map(raw["annotations"], f"{path}.annotations") if raw.get("annotations") is not None else {}
    artifact_type = None
    if raw.get("artifactType") is not None:
        artifact_type = _media_type(raw["artifactType"], f"{path}.artifactType")
    platform = None
    if raw.get("platform") is not None:
        platform = _platform(raw["platform"], f"{path}.platform")
        if not with_platform:
            platform = None  # allowed by the spec on any descriptor; only meaningful in an index
    return Descriptor(media_type=media_type, digest=digest, size=size, urls=urls,
                      annotations=annotations, artifact_type=artifact_type, platform=platform)


# --- Media type resolution ------------------------------------------------------------------


def _resolve_media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = None
    if "mediaType" in document and document["mediaType"] is not None:
        declared = _string(document["mediaType"], "mediaType")
    sent = mediatypes.base_media_type(content_type)
    for candidate, where in ((declared, "mediaType"), (sent, "Content-Type")):
        if candidate in {mediatypes.DOCKER_MANIFEST_V1, mediatypes.DOCKER_MANIFEST_V1_SIGNED}:
            raise InvalidManifest(f"{where} {candidate}: Docker schema 1 manifests are not supported; "
                                  "push with a current client (schema 2 or OCI)")
    if declared is not None:
        if declared not in mediatypes.MANIFEST_TYPES:
            raise InvalidManifest(f"unsupported manifest mediaType {declared[:100]!r}")
        if sent in mediatypes.MANIFEST_TYPES and sent != declared:
            raise InvalidManifest(f"the manifest's mediaType {declared} does not match the "
                                  f"Content-Type {sent}")
        return declared
    if sent in mediatypes.MANIFEST_TYPES:
        return sent
    # umoci writes OCI manifests without mediaType and the client may send a generic type.
    if "manifests" in document:
        return mediatypes.OCI_INDEX
    if "config" in document and "layers" in document:
        return mediatypes.OCI_MANIFEST
    raise InvalidManifest("cannot tell the manifest's media type: set mediaType in the manifest or "
                          "send a manifest Content-Type")


# --- Public API -----------------------------------------------------------------------------


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate an image manifest or index; raise InvalidManifest with the reason when it is not one."""
    document = _decode_json(body, "manifest")
    if not isinstance(document, dict):
        raise InvalidManifest(f"manifest must be a JSON object, not {_type_name(document)}")
    if "schemaVersion" not in document:
        raise InvalidManifest("schemaVersion is required")
    version = document["schemaVersion"]
    if isinstance(version, bool) or not isinstance(version, int) or version != 2:
        shown = version if isinstance(version, int) and abs(version) < 10**6 else _type_name(version)
        raise InvalidManifest(f"schemaVersion must be 2, not {shown}")
    media_type = _resolve_media_type(document, content_type)

    annotations = {}
    if document.get("annotations") is not None:
        annotations = _string_map(document["annotations"], "annotations")
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    declared_artifact_type = None
    if document.get("artifactType") is not None:
        declared_artifact_type = _media_type(document["artifactType"], "artifactType")

    if media_type in mediatypes.INDEX_TYPES:
        if "manifests" not in document:
            raise InvalidManifest(f"manifests is required in an index ({media_type})")
        if "config" in document or "layers" in document:
            raise InvalidManifest("an index must not have config or layers")
        children = [
            _descriptor(item, f"manifests[{i}]", with_platform=True)
            for i, item in enumerate(_array(document["manifests"], "manifests"))
        ]
        return ParsedManifest(media_type=media_type, artifact_type=declared_artifact_type, config=None,
                              layers=[], manifests=children, subject=subject, annotations=annotations)

    for required in ("config", "layers"):
        if required not in document:
            raise InvalidManifest(f"{required} is required in an image manifest ({media_type})")
    if "manifests" in document:
        raise InvalidManifest("an image manifest must not have manifests")
    config = _descriptor(document["config"], "config")
    layers = [_descriptor(item, f"layers[{i}]") for i, item in enumerate(_array(document["layers"], "layers"))]
    if config.size + sum(layer.size for layer in layers) > MAX_SIZE:
        raise InvalidManifest(f"the sizes of config and layers add up to more than {MAX_SIZE} bytes")
    # OCI 1.1 referrers: the artifact type is artifactType, else the config's media type.
    artifact_type = declared_artifact_type or config.media_type
    return ParsedManifest(media_type=media_type, artifact_type=artifact_type, config=config, layers=layers,
                          manifests=[], subject=subject, annotations=annotations)


def _short_text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return _BAD_CHARACTERS_RE.sub("", value)[:MAX_HISTORY_TEXT]


def image_platform(config_json_bytes: bytes) -> dict[str, Any]:
    """os, architecture, variant and history from an image config blob; blanks for whatever is unusable.

    Never raises: a config that is not JSON, or has odd types, gives empty values.
    """
    result: dict[str, Any] = {"os": "", "architecture": "", "variant": "", "history": []}
    try:
        document = _decode_json(config_json_bytes, "config")
    except InvalidManifest:
        return result
    if not isinstance(document, dict):
        return result
    for key in ("os", "architecture", "variant"):
        result[key] = _short_text(document.get(key))[:100]
    history = document.get("history")
    if isinstance(history, list):
        for entry in history[:MAX_HISTORY]:
            if not isinstance(entry, dict):
                continue
            result["history"].append({
                "created": _short_text(entry.get("created"))[:64],
                "created_by": _short_text(entry.get("created_by")),
                "comment": _short_text(entry.get("comment")),
                "empty_layer": entry.get("empty_layer") is True,
            })
    return result
