"""Build rules and tag templates: pure functions."""

import pytest

from builds.constants import BRANCH, TAG
from builds.tags import (
    GitRef,
    RuleError,
    RuleSpec,
    default_rule,
    match_rule,
    matching_rules,
    parse_ref,
    render_tag,
    should_skip,
    validate_rule,
)


@pytest.mark.parametrize(("ref", "expected"), [
    ("refs/heads/main", GitRef(BRANCH, "main")),
    ("refs/tags/v1.2.3", GitRef(TAG, "v1.2.3")),
    ("refs/heads/feature/x", GitRef(BRANCH, "feature/x")),
    ("main", GitRef(BRANCH, "main")),
])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


def test_parse_ref_refuses_other_namespaces():
    with pytest.raises(RuleError):
        parse_ref("refs/notes/commits")


def test_default_rule_builds_latest_from_the_default_branch():
    assert match_rule(default_rule("main"), GitRef(BRANCH, "main")).tag == "latest"
    assert match_rule(default_rule("main"), GitRef(BRANCH, "dev")) is None


def test_literal_source_matches_only_its_type():
    rule = RuleSpec(TAG, "main", "stable")
    assert match_rule(rule, GitRef(BRANCH, "main")) is None
    assert match_rule(rule, GitRef(TAG, "main")).tag == "stable"


def test_sourceref_is_the_ref_name():
    rule = RuleSpec(BRANCH, "/.*/", "{sourceref}")
    assert match_rule(rule, GitRef(BRANCH, "dev")).tag == "dev"


def test_sourceref_with_a_slash_becomes_a_valid_tag():
    rule = RuleSpec(BRANCH, "/.*/", "{sourceref}")
    assert match_rule(rule, GitRef(BRANCH, "feature/login")).tag == "feature-login"


def test_regex_captures():
    rule = RuleSpec(TAG, r"/^v([0-9]+)\.([0-9]+)\.([0-9]+)$/", r"{\1}.{\2}-{\3}")
    assert match_rule(rule, GitRef(TAG, "v1.20.3")).tag == "1.20-3"
    assert match_rule(rule, GitRef(TAG, "release-1")) is None


def test_docker_hub_example():
    rule = RuleSpec(TAG, r"/^v([0-9.]+)$/", r"version-{\1}")
    assert match_rule(rule, GitRef(TAG, "v2.0")).tag == "version-2.0"


def test_disabled_rule_never_matches():
    assert match_rule(RuleSpec(BRANCH, "main", "latest", enabled=False), GitRef(BRANCH, "main")) is None


def test_matching_rules_keeps_one_match_per_tag_in_order():
    rules = [RuleSpec(BRANCH, "main", "latest", id=1), RuleSpec(BRANCH, "/^ma/", "latest", id=2),
             RuleSpec(BRANCH, "/.*/", "{sourceref}", id=3)]
    found = matching_rules(rules, GitRef(BRANCH, "main"))
    assert [(m.rule.id, m.tag) for m in found] == [(1, "latest"), (3, "main")]


def test_render_tag_refuses_what_is_no_tag():
    assert render_tag("{sourceref}", ref_name="...") is None
    assert render_tag("x" * 200, ref_name="a") == "x" * 128


@pytest.mark.parametrize(("source_type", "source", "docker_tag"), [
    ("branch", "/([/", "latest"),
    ("branch", "main", r"{\1}"),
    ("branch", "/^(a)$/", r"{\2}"),
    ("branch", "main", "{other}"),
    ("branch", "main", "bad tag"),
    ("commit", "main", "latest"),
    ("branch", "", "latest"),
])
def test_validate_rule_refuses(source_type, source, docker_tag):
    with pytest.raises(RuleError):
        validate_rule(source_type, source, docker_tag)


def test_validate_rule_accepts_templates():
    validate_rule("tag", r"/^v(\d+)$/", r"v{\1}-{sourceref}")


@pytest.mark.parametrize("message", ["fix [skip build]", "[BUILD SKIP] docs", "x\n\n[skip build]"])
def test_skip_markers(message):
    assert should_skip(message)


def test_no_skip_marker():
    assert not should_skip("build me [skip ci]")
