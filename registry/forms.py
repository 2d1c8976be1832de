"""The retention policy form, shared by the repository and organization settings pages."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from repositories.immutability import MAX_RULE_LENGTH, MAX_RULES, clean_rules

MAX_DAYS = 3650
MAX_KEEP = 100000


def _pattern_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, help_text=help_text, widget=forms.Textarea(
        attrs={"rows": 2, "class": "mono", "spellcheck": "false"}))


class RetentionPolicyForm(forms.Form):
    enabled = forms.BooleanField(label="Apply this policy every day", required=False)
    keep_last = forms.IntegerField(label="Keep the most recently pushed tags", required=False, min_value=0,
                                   max_value=MAX_KEEP, help_text="How many to keep. Empty: this rule keeps none.")
    keep_days = forms.IntegerField(label="Keep tags pushed or pulled within (days)", required=False, min_value=0,
                                   max_value=MAX_DAYS, help_text="Empty: this rule keeps none.")
    include_patterns = _pattern_field(
        "Only tags matching", "One regular expression per line, matched against the whole tag. Empty: every tag.")
    exclude_patterns = _pattern_field(
        "Never tags matching", f"One per line; these always stay. At most {MAX_RULES} patterns of "
                               f"{MAX_RULE_LENGTH} characters per list (RE2 syntax).")
    untagged_days = forms.IntegerField(label="Remove untagged images older than (days)", required=False,
                                       min_value=0, max_value=MAX_DAYS, help_text="Empty: keep them.")

    def clean(self) -> dict:
        data = super().clean()
        for name in ("include_patterns", "exclude_patterns"):
            lines = [line for line in (data.get(name) or "").splitlines() if line.strip()]
            try:
                data[name] = clean_rules(lines)
            except ValidationError as error:
                self.add_error(name, error)
        if data.get("enabled") and data.get("keep_last") is None and data.get("keep_days") is None \
                and data.get("untagged_days") is None:
            raise ValidationError("Set at least one rule, or leave the policy off.")
        return data

    @classmethod
    def initial_for(cls, policy) -> dict:
        return {"enabled": policy.enabled, "keep_last": policy.keep_last, "keep_days": policy.keep_days,
                "include_patterns": "\n".join(policy.include_patterns or []),
                "exclude_patterns": "\n".join(policy.exclude_patterns or []), "untagged_days": policy.untagged_days}
