"""Forms for the repository pages. They validate input; the services do the work."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Namespace, Team
from repositories.immutability import MAX_RULE_LENGTH, MAX_RULES, clean_rules
from repositories.models import Repository, TeamPermission, validate_repository_name

VISIBILITY_CHOICES = [
    ("public", "Public — anyone can pull it and find it in search"),
    ("private", "Private — only you and the people or teams you add"),
]
# Words a repository may not be called: they read as site sections or official-image aliases.
RESERVED_REPOSITORY_NAMES = frozenset({"library", "official", "_", "v2", "api", "search", "explore"})


class RepositoryCreateForm(forms.Form):
    namespace = forms.ChoiceField(label="Namespace", help_text="Your own namespace or an organization's.")
    name = forms.CharField(
        label="Repository name", max_length=255,
        help_text="Lowercase letters, digits and separators (. _ __ -), e.g. my-app.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}),
    )
    description = forms.CharField(label="Short description", max_length=100, required=False,
                                  help_text="Up to 100 characters, shown in search results.")
    visibility = forms.ChoiceField(label="Visibility", choices=VISIBILITY_CHOICES, widget=forms.RadioSelect,
                                   initial="public")

    def __init__(self, *args, namespaces: list[Namespace], **kwargs):
        super().__init__(*args, **kwargs)
        self.namespaces = {namespace.name: namespace for namespace in namespaces}
        self.fields["namespace"].choices = [(name, name) for name in self.namespaces]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name != name.lower():
            raise ValidationError("Use lowercase letters only.", code="uppercase")
        if name in RESERVED_REPOSITORY_NAMES:
            raise ValidationError(f"“{name}” is reserved. Please choose another name.", code="reserved")
        validate_repository_name(name)
        return name

    def clean(self):
        data = super().clean()
        namespace = self.namespaces.get(data.get("namespace", ""))
        name = data.get("name")
        # A pending repository (a push that has not finished) is taken over by the create: not "taken".
        if namespace is not None and name and Repository.objects.filter(namespace=namespace, name=name,
                                                                        is_pending=False).exists():
            self.add_error("name", ValidationError(f"{namespace.name}/{name} already exists.", code="taken"))
        data["namespace_obj"] = namespace
        return data


class RepositorySettingsForm(forms.Form):
    description = forms.CharField(label="Short description", max_length=100, required=False,
                                  help_text="Up to 100 characters, shown in search results.")
    full_description = forms.CharField(
        label="Overview (README)", max_length=25000, required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "mono"}),
        help_text="Markdown. Shown on the Overview tab; HTML is sanitized.",
    )


class VisibilityForm(forms.Form):
    visibility = forms.ChoiceField(label="Visibility", choices=VISIBILITY_CHOICES, widget=forms.RadioSelect)


class ImmutableTagsForm(forms.Form):
    """Docker Hub's three choices; the rules are one regular expression per line."""

    ALL_MUTABLE, ALL_IMMUTABLE, SPECIFIC = "off", "all", "rules"
    mode = forms.ChoiceField(label="Tag immutability", widget=forms.RadioSelect, choices=[
        (ALL_MUTABLE, "All tags are mutable: a push may move any tag, and any tag may be deleted"),
        (ALL_IMMUTABLE, "All tags are immutable: once pushed, a tag always names the same image"),
        (SPECIFIC, "Specific tags are immutable: those a rule below matches"),
    ])
    rules = forms.CharField(
        label="Rules", required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false",
                                     "placeholder": "v.*\n.*-RELEASE"}),
        help_text=f"One regular expression per line, matched against the whole tag (RE2 syntax: no "
                  f"backreferences or lookaround); at most {MAX_RULES} rules of {MAX_RULE_LENGTH} characters. "
                  "Signature tags (sha256-….sig) stay mutable.")

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        rules = [line for line in data.get("rules", "").splitlines() if line.strip()]
        if data["mode"] == self.SPECIFIC:
            if not rules:
                self.add_error("rules", "Write at least one rule, or choose another option.")
                return data
            try:
                data["rules_list"] = clean_rules(rules)
            except ValidationError as error:
                self.add_error("rules", error)
        else:
            data["rules_list"] = []
        return data


class RepositoryDeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the repository's full name to confirm",
                              widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))

    def __init__(self, *args, expected: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm"].help_text = f"Type {expected} exactly."

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.expected:
            raise ValidationError(f"That is not {self.expected}. Nothing was deleted.", code="mismatch")
        return value


class CollaboratorForm(forms.Form):
    username = forms.CharField(label="Username", max_length=30,
                               widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}))


class TeamPermissionForm(forms.Form):
    team = forms.ModelChoiceField(label="Team", queryset=Team.objects.none(), to_field_name="name")
    permission = forms.ChoiceField(label="Permission", choices=TeamPermission.Level.choices)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        # The owners team already has everything: granting it less would be confusing.
        self.fields["team"].queryset = organization.teams.exclude(name=Team.OWNERS).order_by("name")
