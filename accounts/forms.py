"""Forms for the account, organization and token pages. They check shape; services check rules."""

from __future__ import annotations

from datetime import UTC, datetime, time

from allauth.account.forms import SignupForm as AccountSignupForm
from allauth.socialaccount.forms import SignupForm as SocialSignupForm
from django import forms

from accounts.models import AccessToken, Organization, User


class ProfileForm(forms.ModelForm):
    website = forms.URLField(required=False, assume_scheme="https", help_text="Shown on your public profile.")

    class Meta:
        model = User
        fields = ["full_name", "company", "location", "website", "default_private"]
        labels = {
            "full_name": "Full name",
            "default_private": "Make new repositories private by default",
        }
        help_texts = {
            "default_private": "Applies to repositories created by a push or from the web. "
            "You can change each repository's visibility later.",
        }


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(
        label="Organization name", max_length=30,
        help_text="4–30 lowercase letters and digits. This is the namespace: <name>/<repository>.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )
    full_name = forms.CharField(label="Display name", max_length=150, required=False)


class OrganizationProfileForm(forms.ModelForm):
    website = forms.URLField(required=False, assume_scheme="https")

    class Meta:
        model = Organization
        fields = ["full_name", "company", "location", "website", "email", "default_private"]
        labels = {"full_name": "Display name", "email": "Contact email",
                  "default_private": "Make new repositories private by default"}


class TeamForm(forms.Form):
    name = forms.CharField(
        label="Team name", max_length=30, help_text="1–30 letters, digits, '-' or '_'.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    description = forms.CharField(max_length=255, required=False)
    can_create_repositories = forms.BooleanField(
        label="Members may create repositories in the organization", required=False,
    )


class TeamSettingsForm(forms.Form):
    description = forms.CharField(max_length=255, required=False)
    can_create_repositories = forms.BooleanField(
        label="Members may create repositories in the organization", required=False,
    )


class AddMemberForm(forms.Form):
    username = forms.CharField(
        label="Username", max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )


class AccessTokenForm(forms.Form):
    label = forms.CharField(
        label="Description", max_length=100,
        help_text="What is this token for? For example “laptop” or “CI pipeline”.",
    )
    scope = forms.ChoiceField(
        label="Access permissions", choices=AccessToken.Scope.choices, initial=AccessToken.Scope.READ,
        widget=forms.RadioSelect,
    )
    expires_on = forms.DateField(
        label="Expiration date", required=False,
        help_text="Optional. The token stops working at 00:00 UTC on this date. Leave empty for no expiry.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    @property
    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class ConfirmNameForm(forms.Form):
    """Type the exact name of what you are about to delete."""

    confirm = forms.CharField(
        label="Type the name to confirm", max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )

    def __init__(self, *args, expected: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm"].label = f"Type “{expected}” to confirm"

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.expected:
            raise forms.ValidationError(f"That does not match. Type “{self.expected}” exactly.")
        return value


USERNAME_RULES = ("4–30 lowercase letters (a–z) and digits (0–9). It is also your namespace: your repositories "
                  "are <name>/<repository>. It cannot be changed later.")


class SignupForm(AccountSignupForm):
    """The sign-up form with the username rules shown before the first submit, not only in its errors.
    The password fields come back empty after a refused submit, by design: a password is never written
    back into a page (where the browser's cache and history would keep it); the other fields keep their input."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.help_text = USERNAME_RULES
        username.widget.attrs.update({"autocapitalize": "none", "spellcheck": "false"})


class SSOSignupForm(SocialSignupForm):
    """First sign-in through single sign-on: pick the namespace name (the sign-up rules apply through the
    account adapter's clean_username); the email is the one the provider vouched for and cannot be changed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.label = "Namespace name"
        username.help_text = ("Your username and the namespace of your repositories (<name>/<repository>): "
                              "4–30 lowercase letters and digits. It cannot be changed later.")
        username.widget.attrs.update({"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"})
        if "email" in self.fields:
            self.fields["email"].disabled = True
            self.fields["email"].help_text = "Confirmed by your identity provider."
