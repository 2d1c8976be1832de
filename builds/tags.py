"""Pure build rules: which rules a Git ref matches, and the Docker tag each one makes.

Docker Hub's grammar (REFERENCE.md §6): a rule's source is a name (`main`) or a regex between
slashes (`/^v([0-9.]+)$/`); its Docker tag is a literal, `{sourceref}` (the matched ref name) or
`{\\1}`…`{\\9}` (the regex's captures). No Django here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from builds.constants import BRANCH, SKIP_MARKERS, TAG

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
PLACEHOLDER_RE = re.compile(r"\{(sourceref|\\[1-9])\}")
REF_PREFIXES = {"refs/heads/": BRANCH, "refs/tags/": TAG}


class RuleError(ValueError):
    """A rule that can never produce a valid tag (bad regex, unknown placeholder)."""


@dataclass(frozen=True)
class GitRef:
    source_type: str  # branch or tag
    name: str

    @property
    def full(self) -> str:
        return f"refs/heads/{self.name}" if self.source_type == BRANCH else f"refs/tags/{self.name}"


@dataclass(frozen=True)
class RuleSpec:
    """What the matcher needs of a BuildRule (the model converts itself with `as_spec()`)."""

    source_type: str
    source: str
    docker_tag: str
    enabled: bool = True
    id: int | None = None


@dataclass(frozen=True)
class Match:
    rule: RuleSpec
    ref: GitRef
    tag: str


def parse_ref(ref: str, *, default_type: str = BRANCH) -> GitRef:
    """`refs/heads/main` → branch main, `refs/tags/v1` → tag v1, a bare name → `default_type`."""
    for prefix, source_type in REF_PREFIXES.items():
        if ref.startswith(prefix):
            return GitRef(source_type, ref[len(prefix):])
    if ref.startswith("refs/"):
        raise RuleError(f"unsupported ref {ref!r}: expected refs/heads/… or refs/tags/…")
    return GitRef(default_type, ref)


def is_regex(source: str) -> bool:
    return len(source) >= 2 and source.startswith("/") and source.endswith("/")


def compile_source(source: str) -> re.Pattern[str] | None:
    """The compiled regex of a `/…/` source, None for a plain name; RuleError when it does not compile."""
    if not is_regex(source):
        return None
    try:
        return re.compile(source[1:-1])
    except re.error as error:
        raise RuleError(f"invalid regular expression {source!r}: {error}") from None


def validate_rule(source_type: str, source: str, docker_tag: str) -> None:
    """Raise RuleError when the rule is malformed (checked when it is saved)."""
    if source_type not in (BRANCH, TAG):
        raise RuleError("source type must be branch or tag")
    if not source:
        raise RuleError("source is required")
    pattern = compile_source(source)
    if not docker_tag:
        raise RuleError("docker tag is required")
    groups = pattern.groups if pattern is not None else 0
    for placeholder in PLACEHOLDER_RE.findall(docker_tag):
        if placeholder.startswith("\\") and int(placeholder[1]) > groups:
            raise RuleError(f"{{{placeholder}}} refers to a capture the source does not have")
    leftover = PLACEHOLDER_RE.sub("x", docker_tag)
    if "{" in leftover or "}" in leftover:
        raise RuleError("unknown placeholder in docker tag: use {sourceref} or {\\1}…{\\9}")
    if not TAG_RE.match(leftover):
        raise RuleError(f"docker tag {docker_tag!r} cannot make a valid tag")


def sanitize_tag(value: str) -> str:
    """A ref name as a Docker tag: characters outside [A-Za-z0-9_.-] become `-` (feature/x → feature-x)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).lstrip(".-")
    return cleaned[:128]


def render_tag(template: str, *, ref_name: str, groups: tuple[str | None, ...] = ()) -> str | None:
    """The tag a template makes for a matched ref, or None when the result is not a valid tag."""

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "sourceref":
            return ref_name
        index = int(key[1]) - 1
        return (groups[index] or "") if index < len(groups) else ""

    tag = sanitize_tag(PLACEHOLDER_RE.sub(substitute, template))
    return tag if TAG_RE.match(tag) else None


def match_rule(rule: RuleSpec, ref: GitRef) -> Match | None:
    """The tag `rule` makes for `ref`, or None when the rule does not apply (or makes no valid tag)."""
    if not rule.enabled or rule.source_type != ref.source_type:
        return None
    pattern = compile_source(rule.source)
    if pattern is None:
        if rule.source != ref.name:
            return None
        groups: tuple[str | None, ...] = ()
    else:
        found = pattern.search(ref.name)
        if found is None:
            return None
        groups = found.groups()
    tag = render_tag(rule.docker_tag, ref_name=ref.name, groups=groups)
    return Match(rule, ref, tag) if tag else None


def matching_rules(rules: Iterable[RuleSpec], ref: GitRef) -> list[Match]:
    """Every enabled rule that applies to `ref`, one match per distinct tag, in rule order."""
    matches: list[Match] = []
    seen: set[str] = set()
    for rule in rules:
        found = match_rule(rule, ref)
        if found is not None and found.tag not in seen:
            seen.add(found.tag)
            matches.append(found)
    return matches


def should_skip(message: str) -> bool:
    """`[skip build]` or `[build skip]` anywhere in the commit message (case-insensitive)."""
    lowered = (message or "").lower()
    return any(marker in lowered for marker in SKIP_MARKERS)


def default_rule(default_branch: str) -> RuleSpec:
    """Docker Hub's default: the default branch builds `latest`."""
    return RuleSpec(source_type=BRANCH, source=default_branch, docker_tag="latest")
