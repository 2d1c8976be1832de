from dataclasses import dataclass
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from accounts.services import namespace_check_available
from accounts.throttles import (
    LoginAttempt,
    TooManyAttempts,
    account_for_identifier,
    client_address,
    login_attempt_begin,
)

THROTTLED_ATTRIBUTE = "wharf_login_throttled"  # set on the request when the failure budget is used up


@dataclass(frozen=True)
class SiteIdentity:
    """What allauth's emails call `current_site`: without django.contrib.sites it was the request's
    host:port ("Hello from 127.0.0.1:8000!"); now the site's name (HUB_SITE_NAME) and public host."""

    name: str
    domain: str

    def __str__(self) -> str:
        return self.name


def _identifier(credentials: dict[str, Any]) -> str:
    return str(credentials.get("username") or credentials.get("email") or "")


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up rules: usernames are namespaces (Docker Hub rules, reserved words, tombstones).
    Password logins (the login form, which the admin goes through, and reauthentication) share the
    failure budget of every other door (accounts.throttles) instead of allauth's own."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return getattr(settings, "HUB_SIGNUP_OPEN", True)

    def clean_username(self, username: str, shallow: bool = False) -> str:
        username = super().clean_username(username, shallow=shallow)
        if username != username.lower():
            raise ValidationError("Use lowercase letters only.")
        if not shallow:
            namespace_check_available(name=username)
        return username

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        context = {**context, "current_site": SiteIdentity(settings.HUB_SITE_NAME, settings.HUB_PUBLIC_HOST)}
        super().send_mail(template_prefix, email, context)

    def get_client_ip(self, request: HttpRequest) -> str:
        address = client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine client IP address")
        return address

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """Counted as a failure now, taken back in authenticate() when the password was right."""
        identifier = _identifier(credentials)
        self._login_attempt = None
        try:
            self._login_attempt = login_attempt_begin(identifier=identifier, address=client_address(request),
                                                      user=account_for_identifier(identifier))
        except TooManyAttempts as exc:
            setattr(request, THROTTLED_ATTRIBUTE, exc)
            raise self.validation_error("too_many_login_attempts") from None

    def authenticate(self, request: HttpRequest, **credentials: Any):
        user = super().authenticate(request, **credentials)
        attempt: LoginAttempt | None = getattr(self, "_login_attempt", None)
        if attempt is not None:
            if user is not None:
                attempt.succeeded()
            else:
                attempt.failed()
            self._login_attempt = None
        return user
