from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.services import namespace_check_available


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up rules: usernames are namespaces (Docker Hub rules, reserved words, tombstones)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return getattr(settings, "HUB_SIGNUP_OPEN", True)

    def clean_username(self, username: str, shallow: bool = False) -> str:
        username = super().clean_username(username, shallow=shallow)
        if username != username.lower():
            raise ValidationError("Use lowercase letters only.")
        if not shallow:
            namespace_check_available(name=username)
        return username
