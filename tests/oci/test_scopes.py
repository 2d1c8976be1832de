"""Docker token scope grammar."""

import pytest

from oci.scopes import InvalidScope, Scope, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("repository:alice/app:pull", Scope("repository", "alice/app", frozenset({"pull"}))),
        ("repository:alice/app:pull,push", Scope("repository", "alice/app", frozenset({"pull", "push"}))),
        ("repository:ubuntu:pull", Scope("repository", "ubuntu", frozenset({"pull"}))),
        ("repository:alice/app:*", Scope("repository", "alice/app", frozenset({"*"}))),
        ("repository:alice/app:delete", Scope("repository", "alice/app", frozenset({"delete"}))),
        ("repository:localhost:5000/alice/app:push",
         Scope("repository", "localhost:5000/alice/app", frozenset({"push"}))),
        ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"}))),
        ("registry:catalog:search", Scope("registry", "catalog", frozenset({"search"}))),
        # Names that break the repository grammar still parse: granting decides they get nothing.
        ("repository:Alice/App:pull", Scope("repository", "Alice/App", frozenset({"pull"}))),
    ],
)
def test_parse_valid_scopes(value, expected):
    assert parse_scope(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "repository",
        "repository:alice/app",
        "repository::pull",
        ":alice/app:pull",
        "repository:alice/app:",
        "repository:alice/app:pull,",
        "repository:alice/app:pull,,push",
        "repository:alice/app:admin",
        "repository:alice/app:PULL",
        "registry:catalog:pull",
        "registry:other:*",
        "plugin:alice/app:pull",
        "repository(plugin):alice/app:pull",
        "repository:alice app:pull",
        "repository:alice/app\x00:pull",
        "repository:" + "a" * 600 + ":pull",
        "repository:alice/app:pull push",
    ],
)
def test_parse_rejects_invalid_scopes(value):
    with pytest.raises(InvalidScope):
        parse_scope(value)


def test_invalid_scope_is_a_value_error():
    assert issubclass(InvalidScope, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("repository:alice/app:push,pull", "repository:alice/app:pull,push"),
        ("registry:catalog:*", "registry:catalog:*"),
        ("repository:h:5000/a/b:pull", "repository:h:5000/a/b:pull"),
    ],
)
def test_str_round_trips(value, text):
    assert str(parse_scope(value)) == text
    assert parse_scope(str(parse_scope(value))) == parse_scope(value)


def test_parse_scopes_splits_on_spaces():
    scopes = parse_scopes(["repository:alice/app:pull repository:bob/lib:pull,push", "registry:catalog:*"])
    assert [str(s) for s in scopes] == [
        "repository:alice/app:pull", "repository:bob/lib:pull,push", "registry:catalog:*",
    ]


def test_parse_scopes_merges_repeated_resources():
    scopes = parse_scopes(["repository:alice/app:pull", "repository:alice/app:push"])
    assert scopes == [Scope("repository", "alice/app", frozenset({"pull", "push"}))]


def test_parse_scopes_ignores_empty_values():
    assert parse_scopes(["", "   "]) == []


def test_parse_scopes_raises_on_any_invalid_scope():
    with pytest.raises(InvalidScope):
        parse_scopes(["repository:alice/app:pull nonsense"])
