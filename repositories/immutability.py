"""Immutable tags: which tags of a repository may not be moved or deleted.

Docker Hub's model: off (every tag mutable), on with no rules (every tag immutable), or on with
rules, regular expressions each matched against the whole tag (`v.*`, `.*-RELEASE`). Rules are
written by users and matched on every push, so they go through RE2 (google-re2), whose matching
time is linear in the tag's length whatever the pattern: a pattern built to backtrack
catastrophically (`(a+)+$`) costs what any other does. RE2 has no backreferences or lookaround;
a rule using them is refused when saved, with the reason. Their number and length are capped.

Attachment tags (`sha256-<hex>.sig`, `.att`, `.sbom`: cosign's signatures and attestations) are never
immutable: they name a digest already, and signing an image again moves its `.sig` tag.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import re2
from django.core.exceptions import ValidationError

from oci.names import is_attachment_tag

MAX_RULES = 20
MAX_RULE_LENGTH = 128
ALL_TAGS = "(every tag)"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused rule is reported to the user, not to stderr
_OPTIONS.max_mem = 1 << 20  # a pattern whose program would need more is refused ("pattern too large")


@dataclass(frozen=True)
class ImmutableTags:
    enabled: bool
    rules: tuple[str, ...]

    def rule_for(self, tag: str) -> str | None:
        """The rule that makes `tag` immutable (ALL_TAGS when every tag is), or None when it is mutable."""
        if not self.enabled or is_attachment_tag(tag):
            return None
        if not self.rules:
            return ALL_TAGS
        return first_match(self.rules, tag)


def immutable_tags_of(repository) -> ImmutableTags:
    return ImmutableTags(enabled=bool(repository.immutable_tags), rules=tuple(repository.immutable_tags_rules or ()))


def clean_rules(rules: object) -> list[str]:
    """The rules as stored, or ValidationError naming the first rule that cannot be one."""
    if not isinstance(rules, list | tuple) or not all(isinstance(rule, str) for rule in rules):
        raise ValidationError("Rules must be a list of regular expressions.")
    cleaned = []
    for rule in rules:
        rule = rule.strip()
        if not rule or rule in cleaned:
            continue
        if len(rule) > MAX_RULE_LENGTH:
            raise ValidationError(f"Rule {rule[:40]!r}… is longer than {MAX_RULE_LENGTH} characters.")
        try:
            re2.compile(rule, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise ValidationError(
                f"Rule {rule!r} is not a regular expression Wharf can match in linear time ({reason}); "
                "backreferences and lookaround are not supported.") from None
        cleaned.append(rule)
    if len(cleaned) > MAX_RULES:
        raise ValidationError(f"At most {MAX_RULES} rules.")
    return cleaned


def first_match(rules: tuple[str, ...], tag: str) -> str | None:
    """The first of `rules` (cleaned by clean_rules) matching the whole of `tag`, in linear time."""
    for rule, pattern in zip(rules, _compiled(rules), strict=True):
        if pattern.fullmatch(tag):
            return rule
    return None


@functools.lru_cache(maxsize=1024)
def _compiled(rules: tuple[str, ...]) -> tuple:
    return tuple(re2.compile(rule, _OPTIONS) for rule in rules)
