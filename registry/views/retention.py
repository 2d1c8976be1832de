"""The retention section of the repository and organization settings pages (the form's three buttons)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest

from registry import retention
from registry.forms import RetentionPolicyForm
from registry.models import RetentionPolicy, RetentionRun

ACTIONS = {"save", "dry-run", "run"}


@dataclass
class RetentionSection:
    """What the settings template shows: the form, the policy's recent runs, a dry run just made."""

    form: RetentionPolicyForm
    runs: list[RetentionRun]
    dry_run: RetentionRun | None = None
    failed: bool = False


def section(policy: RetentionPolicy, form: RetentionPolicyForm | None = None,
            dry_run: RetentionRun | None = None) -> RetentionSection:
    runs = list(policy.runs.all()[:5]) if policy.pk else []
    return RetentionSection(form=form or RetentionPolicyForm(initial=RetentionPolicyForm.initial_for(policy)),
                            runs=runs, dry_run=dry_run, failed=form is not None and not form.is_valid())


def handle_post(request: HttpRequest, policy: RetentionPolicy) -> RetentionSection | None:
    """Save the policy, then dry-run or run it as the button asked. None when the page should
    redirect (saved or run); the section to show otherwise (an invalid form, or a dry run's list)."""
    action = request.POST.get("action", "save")
    form = RetentionPolicyForm(request.POST)
    if action not in ACTIONS or not form.is_valid():
        return section(policy, form=form)
    data = form.cleaned_data
    retention.policy_save(policy=policy, user=request.user, enabled=data["enabled"], keep_last=data["keep_last"],
                          keep_days=data["keep_days"], include_patterns=data["include_patterns"],
                          exclude_patterns=data["exclude_patterns"], untagged_days=data["untagged_days"])
    if action == "dry-run":
        made = retention.run(policy, trigger=RetentionRun.Trigger.DRY_RUN, user=request.user)
        return section(policy, dry_run=made)
    if action == "run":
        made = retention.run(policy, trigger=RetentionRun.Trigger.MANUAL, user=request.user)
        if made.error:
            messages.error(request, f"The run stopped: {made.error}")
        else:
            messages.success(request, f"Retention removed {made.removed_count} "
                                      f"{'item' if made.removed_count == 1 else 'items'}.")
    else:
        messages.success(request, "Saved the retention policy.")
    return None
