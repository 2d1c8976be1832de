"""Repository names (two components at most, `library` for one) and tags."""

import pytest

from oci.names import (
    InvalidName,
    display_name,
    is_attachment_tag,
    is_valid_repository_name,
    is_valid_tag,
    normalize_repository_name,
)

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ubuntu", ("library", "ubuntu")),
        ("library/ubuntu", ("library", "ubuntu")),
        ("alice/app", ("alice", "app")),
        ("alice/my-app", ("alice", "my-app")),
        ("alice/my--app", ("alice", "my--app")),
        ("alice/my__app", ("alice", "my__app")),
        ("alice/my.app_2", ("alice", "my.app_2")),
        ("a/b", ("a", "b")),
        ("0/9", ("0", "9")),
    ],
)
def test_normalize_valid_names(name, expected):
    assert normalize_repository_name(name) == expected
    assert is_valid_repository_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "alice/",
        "/app",
        "alice//app",
        "alice/team/app",  # three components
        "a/b/c/d",
        "Alice/app",
        "alice/App",
        "alice/-app",
        "alice/app-",
        "alice/app.",
        "alice/.app",
        "alice/a..b",
        "alice/a___b",
        "alice/a_-b",
        "alice/app:latest",
        "alice/app@sha256",
        "127.0.0.1:5000/alice",
        "alice/ app",
        "alice/app\n",
        "alice/é",
        "a" * 256,
        "alice/" + "a" * 250,
    ],
)
def test_normalize_rejects_invalid_names(name):
    with pytest.raises(InvalidName):
        normalize_repository_name(name)
    assert not is_valid_repository_name(name)


@pytest.mark.parametrize("name", [None, 3, b"alice/app"])
def test_normalize_rejects_non_strings(name):
    with pytest.raises(InvalidName):
        normalize_repository_name(name)


def test_invalid_name_is_a_value_error():
    assert issubclass(InvalidName, ValueError)


@pytest.mark.parametrize(
    ("namespace", "name", "expected"),
    [("library", "ubuntu", "ubuntu"), ("alice", "app", "alice/app")],
)
def test_display_name(namespace, name, expected):
    assert display_name(namespace, name) == expected


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_private", "1", "A-b_c.d", "a" * 128, "sha256-" + HEX64])
def test_valid_tags(tag):
    assert is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", ".hidden", "-dash", "a" * 129, "with space", "a/b", "a:b", "é", "a\n", None, 1])
def test_invalid_tags(tag):
    assert not is_valid_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [f"sha256-{HEX64}", f"sha256-{HEX64}.sig", f"sha256-{HEX64}.att", f"sha256-{HEX64}.sbom",
     f"sha256-{HEX64}.custom-suffix"],
)
def test_attachment_tags(tag):
    assert is_attachment_tag(tag)


@pytest.mark.parametrize(
    "tag",
    ["latest", f"sha256-{HEX64[:-1]}", f"sha256-{HEX64}0", f"sha256-{HEX64.upper()}", f"sha256:{HEX64}",
     f"sha512-{HEX64}", f"sha256-{HEX64}.", f"sha256-{HEX64}sig", f"sha256-{HEX64}." + "a" * 60],
)
def test_not_attachment_tags(tag):
    assert not is_attachment_tag(tag)
