"""Digest parsing, hashing and content-addressed paths."""

import hashlib

import pytest

from oci.digests import Digest, InvalidDigest, content_path, is_valid_digest, parse_digest, sha256_digest

HEX64 = "a" * 64
HEX128 = "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("value", "algorithm", "hex_part"),
    [(f"sha256:{HEX64}", "sha256", HEX64), (f"sha512:{HEX128}", "sha512", HEX128)],
)
def test_parse_valid_digests(value, algorithm, hex_part):
    digest = parse_digest(value)
    assert digest == Digest(algorithm=algorithm, hex=hex_part)
    assert str(digest) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        f"sha256:{'A' * 64}",  # uppercase hex
        f"sha256:{'a' * 63}",
        f"sha256:{'a' * 65}",
        f"sha256:{'g' * 64}",
        f"sha512:{HEX64}",  # wrong length for the algorithm
        f"sha384:{'a' * 96}",
        f"md5:{'a' * 32}",
        f"SHA256:{HEX64}",
        f"sha256:{HEX64}\n",
        f" sha256:{HEX64}",
        f"sha256+b64u:{HEX64}",
        "x" * 10_000,
        f"sha256:{HEX64}:extra",
    ],
)
def test_parse_rejects_invalid_digests(value):
    with pytest.raises(InvalidDigest):
        parse_digest(value)
    assert not is_valid_digest(value)


@pytest.mark.parametrize("value", [None, 5, b"sha256:" + HEX64.encode(), ["sha256"]])
def test_parse_rejects_non_strings(value):
    with pytest.raises(InvalidDigest, match="must be a string"):
        parse_digest(value)


def test_invalid_digest_is_a_value_error():
    assert issubclass(InvalidDigest, ValueError)


def test_message_names_the_unsupported_algorithm():
    with pytest.raises(InvalidDigest, match="unsupported algorithm 'md5'"):
        parse_digest(f"md5:{'a' * 32}")


def test_digest_is_frozen():
    digest = parse_digest(f"sha256:{HEX64}")
    with pytest.raises(AttributeError):
        digest.hex = "b" * 64


def test_sha256_digest():
    assert sha256_digest(b"{}") == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert is_valid_digest(sha256_digest(b""))


def test_content_path_fans_out_by_two_characters():
    digest = "sha256:abcdef" + "0" * 58
    assert content_path(digest) == "sha256/ab/abcdef" + "0" * 58


def test_content_path_accepts_a_parsed_digest():
    assert content_path(parse_digest(f"sha512:{HEX128}")) == f"sha512/01/{HEX128}"


@pytest.mark.parametrize("value", ["sha256:../../etc/passwd", "../x", ""])
def test_content_path_refuses_invalid_digests(value):
    with pytest.raises(InvalidDigest):
        content_path(value)
