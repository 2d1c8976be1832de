"""Manifest and index validation on untrusted bodies."""

import base64
import json

import pytest

from oci import mediatypes as mt
from oci.digests import sha256_digest
from oci.manifests import InvalidManifest, image_platform, parse_manifest

CONFIG = "sha256:" + "c" * 64
LAYER1 = "sha256:" + "1" * 64
LAYER2 = "sha256:" + "2" * 64
CHILD1 = "sha256:" + "a" * 64
CHILD2 = "sha256:" + "b" * 64
SUBJECT = "sha256:" + "d" * 64


def image(media_type=mt.OCI_MANIFEST, **extra):
    body = {
        "schemaVersion": 2,
        "config": {"mediaType": mt.OCI_CONFIG if media_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG,
                   "digest": CONFIG, "size": 100},
        "layers": [
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": LAYER1, "size": 10},
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": LAYER2, "size": 20},
        ],
    }
    if media_type is not None:
        body["mediaType"] = media_type
    body.update(extra)
    return body


def index(media_type=mt.OCI_INDEX, **extra):
    body = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "digest": CHILD1, "size": 500,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": mt.OCI_MANIFEST, "digest": CHILD2, "size": 501,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }
    if media_type is not None:
        body["mediaType"] = media_type
    body.update(extra)
    return body


def encode(document) -> bytes:
    return json.dumps(document).encode()


def parse(document, content_type=None):
    return parse_manifest(encode(document), content_type)


def invalid(document_or_bytes, content_type=None, match=None):
    body = document_or_bytes if isinstance(document_or_bytes, bytes) else encode(document_or_bytes)
    with pytest.raises(InvalidManifest, match=match):
        parse_manifest(body, content_type)


# --- Valid documents ------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_image_manifest(media_type):
    parsed = parse(image(media_type))
    assert parsed.media_type == media_type
    assert parsed.config.digest == CONFIG
    assert [layer.digest for layer in parsed.layers] == [LAYER1, LAYER2]
    assert parsed.blob_references() == [CONFIG, LAYER1, LAYER2]
    assert parsed.manifest_references() == []
    assert not parsed.is_index


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index(media_type):
    parsed = parse(index(media_type))
    assert parsed.media_type == media_type
    assert parsed.is_index
    assert parsed.config is None
    assert parsed.manifest_references() == [CHILD1, CHILD2]
    assert parsed.blob_references() == []
    assert parsed.manifests[0].platform == {"os": "linux", "architecture": "amd64"}
    assert parsed.manifests[1].platform == {"os": "linux", "architecture": "arm64", "variant": "v8"}


def test_blob_references_are_deduplicated():
    document = image()
    document["layers"].append(dict(document["layers"][0]))
    assert parse(document).blob_references() == [CONFIG, LAYER1, LAYER2]


def test_empty_layers_are_allowed():
    assert parse(image(layers=[])).layers == []


def test_media_type_from_content_type_when_body_has_none():
    parsed = parse(image(media_type=None), content_type=mt.DOCKER_MANIFEST)
    assert parsed.media_type == mt.DOCKER_MANIFEST


def test_content_type_parameters_are_ignored():
    parsed = parse(image(media_type=None), content_type=f"{mt.OCI_MANIFEST}; charset=utf-8")
    assert parsed.media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize("content_type", [None, "", "application/json", "application/octet-stream"])
def test_umoci_manifest_without_media_type_is_inferred(content_type):
    assert parse(image(media_type=None), content_type).media_type == mt.OCI_MANIFEST


def test_index_without_media_type_is_inferred():
    assert parse(index(media_type=None)).media_type == mt.OCI_INDEX


def test_matching_body_and_content_type():
    assert parse(image(), content_type=mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST


def test_artifact_type_defaults_to_config_media_type():
    document = image(config={"mediaType": "application/vnd.example.config+json", "digest": CONFIG, "size": 2})
    assert parse(document).artifact_type == "application/vnd.example.config+json"


def test_artifact_type_of_a_plain_image_is_its_config_type():
    assert parse(image()).artifact_type == mt.OCI_CONFIG


def test_declared_artifact_type_wins():
    document = image(artifactType="application/vnd.example.sbom",
                     config={"mediaType": mt.OCI_EMPTY, "digest": mt.OCI_EMPTY_DIGEST, "size": 2})
    assert parse(document).artifact_type == "application/vnd.example.sbom"


def test_index_artifact_type_is_only_the_declared_one():
    assert parse(index()).artifact_type is None
    assert parse(index(artifactType="application/vnd.example")).artifact_type == "application/vnd.example"


def test_subject_and_annotations():
    document = image(subject={"mediaType": mt.OCI_MANIFEST, "digest": SUBJECT, "size": 7},
                     annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
    parsed = parse(document)
    assert parsed.subject.digest == SUBJECT
    assert parsed.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


def test_descriptor_optional_fields():
    document = image()
    document["layers"][0].update(urls=["https://example.com/layer"], annotations={"a": "b"},
                                 artifactType="application/vnd.example")
    layer = parse(document).layers[0]
    assert layer.urls == ("https://example.com/layer",)
    assert layer.annotations == {"a": "b"}
    assert layer.artifact_type == "application/vnd.example"


def test_embedded_data_matching_digest():
    data = b"{}"
    document = image(config={"mediaType": mt.OCI_EMPTY, "digest": sha256_digest(data), "size": 2,
                             "data": base64.b64encode(data).decode()})
    assert parse(document).config.digest == mt.OCI_EMPTY_DIGEST


def test_null_optional_fields_are_ignored():
    document = image(annotations=None, subject=None, artifactType=None)
    parsed = parse(document)
    assert parsed.subject is None and parsed.annotations == {}


def test_unknown_fields_are_ignored():
    assert parse(image(extra={"anything": [1, 2]})).media_type == mt.OCI_MANIFEST


# --- Invalid documents ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"null", "must be a JSON object, not null"),
        (b"[]", "must be a JSON object, not an array"),
        (b'"manifest"', "must be a JSON object, not a string"),
        (b"2", "must be a JSON object, not a number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply|not valid JSON"),
        (b'{"schemaVersion": NaN}', "NaN is not allowed"),
        (b'{"schemaVersion": Infinity}', "Infinity is not allowed"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', "duplicate key"),
        (b'{"schemaVersion": 2, "config": {"size": ' + b"9" * 5000 + b"}}", "too large"),
    ],
)
def test_garbage_bodies(body, match):
    invalid(body, match=match)


@pytest.mark.parametrize("body", [None, "a string", 12, {"schemaVersion": 2}])
def test_non_bytes_body(body):
    with pytest.raises(InvalidManifest):
        parse_manifest(body, None)


@pytest.mark.parametrize(
    ("version", "match"),
    [(1, "must be 2, not 1"), (3, "must be 2"), ("2", "must be 2"), (2.0, "must be 2"), (True, "must be 2"),
     (None, "must be 2"), (10**400, "must be 2")],
)
def test_schema_version_must_be_2(version, match):
    invalid(image(schemaVersion=version), match=match)


def test_schema_version_is_required():
    document = image()
    del document["schemaVersion"]
    invalid(document, match="schemaVersion is required")


@pytest.mark.parametrize("media_type", [mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED])
def test_schema1_is_refused(media_type):
    invalid(image(media_type=None), content_type=media_type, match="schema 1")
    invalid(image(media_type=media_type), match="schema 1")


@pytest.mark.parametrize("media_type", ["application/json", "text/plain", "", 5, ["x"]])
def test_unsupported_body_media_type(media_type):
    invalid(image(media_type=media_type))


def test_body_and_content_type_disagree():
    invalid(image(mt.OCI_MANIFEST), content_type=mt.DOCKER_MANIFEST, match="does not match the Content-Type")


def test_index_body_with_manifest_content_type():
    invalid(index(), content_type=mt.OCI_MANIFEST, match="does not match")


def test_cannot_infer_media_type():
    invalid({"schemaVersion": 2, "config": {}}, match="cannot tell")


@pytest.mark.parametrize("missing", ["config", "layers"])
def test_image_manifest_requires(missing):
    document = image()
    del document[missing]
    invalid(document, match=f"{missing} is required")


def test_index_requires_manifests():
    invalid({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}, match="manifests is required")


def test_index_content_type_on_image_body():
    invalid(image(media_type=None), content_type=mt.OCI_INDEX, match="manifests is required")


def test_index_must_not_have_layers():
    invalid(index(layers=[]), match="must not have config or layers")


def test_manifest_must_not_have_manifests():
    invalid(image(manifests=[]), match="must not have manifests")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("config", None, "config must be an object, not null"),
        ("config", [], "config must be an object"),
        ("config", "sha256:x", "config must be an object"),
        ("layers", {}, "layers must be an array"),
        ("layers", None, "layers must be an array"),
        ("layers", [None], r"layers\[0\] must be an object"),
        ("layers", [1], r"layers\[0\] must be an object"),
        ("annotations", [], "annotations must be an object"),
        ("annotations", {"a": 1}, r"annotations\['a'\] must be a string"),
        ("annotations", {"a": None}, r"annotations\['a'\] must be a string"),
        ("annotations", {"a": "\x00"}, "NUL"),
        ("annotations", {"": "x"}, "must not be empty"),
        ("subject", "sha256:abc", "subject must be an object"),
        ("subject", {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:bad", "size": 1}, "subject.digest"),
        ("artifactType", 3, "artifactType must be a string"),
        ("artifactType", "not-a-media-type", "not a media type"),
    ],
)
def test_invalid_top_level_fields(field, value, match):
    invalid(image(**{field: value}), match=match)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"mediaType": None}, r"layers\[0\].mediaType must be a string"),
        ({"mediaType": 1}, r"layers\[0\].mediaType must be a string"),
        ({"mediaType": ""}, "must not be empty"),
        ({"mediaType": "gzip"}, "not a media type"),
        ({"mediaType": "application/x\ud800"}, "surrogate"),
        ({"digest": "sha256:abc"}, r"layers\[0\].digest: invalid digest"),
        ({"digest": "md5:" + "a" * 32}, "unsupported algorithm"),
        ({"digest": 42}, r"layers\[0\].digest: a digest must be a string"),
        ({"size": -1}, "must not be negative"),
        ({"size": "10"}, "must be an integer, not a string"),
        ({"size": 1.5}, "must be an integer, not a number"),
        ({"size": 10.0}, "must be an integer"),
        ({"size": True}, "must be an integer, not a boolean"),
        ({"size": 2**63}, "too large"),
        ({"size": 10**100}, "too large"),
        ({"size": None}, "must be an integer, not null"),
        ({"urls": "https://x"}, "urls must be an array"),
        ({"urls": [1]}, r"urls\[0\] must be a string"),
        ({"annotations": {"k": ["v"]}}, "must be a string"),
        ({"artifactType": {}}, "artifactType must be a string"),
        ({"data": "!!!"}, "not valid base64"),
        ({"data": base64.b64encode(b"other").decode()}, "does not match"),
        ({"platform": "linux/amd64"}, "platform must be an object"),
    ],
)
def test_invalid_descriptor_fields(changes, match):
    document = image()
    document["layers"][0].update(changes)
    invalid(document, match=match)


def test_size_overflowing_to_infinity():
    body = encode(image()).replace(b'"size": 10', b'"size": 1e400', 1)
    invalid(body, match="must be an integer, not a number")


@pytest.mark.parametrize("sizes", [(2**63 - 1, 1, 0), (0, 2**63 - 1, 2**63 - 1), (2**62, 2**62, 2**62)])
def test_sizes_adding_up_past_int64(sizes):
    document = image()
    document["config"]["size"], document["layers"][0]["size"], document["layers"][1]["size"] = sizes
    invalid(document, match="add up to more than")


def test_sizes_adding_up_to_int64_exactly():
    document = image()
    document["config"]["size"], document["layers"][0]["size"], document["layers"][1]["size"] = (2**63 - 4, 1, 2)
    assert parse_manifest(encode(document), None).config.size == 2**63 - 4


@pytest.mark.parametrize("missing", ["mediaType", "digest", "size"])
def test_descriptor_requires(missing):
    document = image()
    del document["config"][missing]
    invalid(document, match=f"config.{missing} is required")


@pytest.mark.parametrize(
    ("platform", "match"),
    [
        ({"os": "linux"}, "architecture is required"),
        ({"architecture": "amd64"}, "os is required"),
        ({"os": 1, "architecture": "amd64"}, "os must be a string"),
        ({"os": "linux", "architecture": "amd64", "variant": 7}, "variant must be a string"),
        ({"os": "linux", "architecture": "amd64", "os.features": "x"}, "must be an array"),
        (["linux"], "platform must be an object"),
    ],
)
def test_invalid_platform(platform, match):
    document = index()
    document["manifests"][0]["platform"] = platform
    invalid(document, match=match)


def test_index_children_must_be_descriptors():
    invalid(index(manifests=[{"digest": CHILD1}]), match=r"manifests\[0\].mediaType is required")


def test_huge_but_valid_document_is_fine():
    document = image(annotations={f"k{i}": "v" * 100 for i in range(5000)})
    assert len(parse(document).annotations) == 5000


def test_invalid_manifest_is_a_value_error():
    assert issubclass(InvalidManifest, ValueError)


# --- Image config ---------------------------------------------------------------------------


def test_image_platform_reads_config():
    config = {
        "os": "linux", "architecture": "arm64", "variant": "v8",
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file"},
                    {"created_by": "CMD [\"sh\"]", "empty_layer": True}],
    }
    result = image_platform(encode(config))
    assert result["os"] == "linux" and result["architecture"] == "arm64" and result["variant"] == "v8"
    assert result["history"][0]["created_by"] == "/bin/sh -c #(nop) ADD file"
    assert result["history"][1]["empty_layer"] is True
    assert result["history"][1]["created"] == ""


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff", b"[]", b"null", b"[" * 50_000, b'{"os": 5, "architecture": null, "history": "x"}',
     b'{"history": [1, null, "x", {"created_by": 5}]}'],
)
def test_image_platform_never_raises(body):
    result = image_platform(body)
    assert set(result) == {"os", "architecture", "variant", "history"}
    assert isinstance(result["os"], str)
    assert all(isinstance(entry, dict) for entry in result["history"])


def test_image_platform_caps_history():
    config = {"os": "linux", "architecture": "amd64", "history": [{"created_by": "x"}] * 5000}
    assert len(image_platform(encode(config))["history"]) == 1000
