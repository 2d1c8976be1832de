"""Receivers that end credentials: two-factor authentication turned on, tokens revoked or deleted, accounts deleted.

Connected in AccountsConfig.ready(). User.save() itself moves the credentials epoch when the password
changes or the account is deactivated; these cover what happens to the rows around it.
"""

from __future__ import annotations

from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import audit
from accounts.models import AccessToken, OrganizationAccessToken, User
from accounts.revocation import credentials_revoked
from accounts.services import user_credentials_end
from accounts.throttles import account_for_identifier, client_address

SECOND_FACTORS = {Authenticator.Type.TOTP, "webauthn"}


@receiver(post_save, sender=Authenticator, dispatch_uid="accounts.second_factor_added")
def second_factor_added(sender, instance: Authenticator, created: bool, raw: bool = False, **kwargs) -> None:
    """However it is turned on (the web flow, the admin, code), a second factor ends every credential the
    password alone made."""
    if created and not raw and instance.type in SECOND_FACTORS:
        user_credentials_end(user_id=instance.user_id)
        if Authenticator.user.is_cached(instance):  # the caller's User object carries the new epoch too
            instance.user.refresh_from_db(fields=["credentials_epoch"])


@receiver(authenticator_added, dispatch_uid="accounts.keep_the_session_that_added_it")
def keep_the_session_that_added_it(sender, request, user, authenticator, **kwargs) -> None:
    """The session that turned two-factor authentication on stays logged in; the others end."""
    if request is not None and getattr(request, "user", None) is not None and request.user.is_authenticated:
        request.user.refresh_from_db(fields=["credentials_epoch"])
        update_session_auth_hash(request, request.user)


@receiver(post_save, sender=AccessToken, dispatch_uid="accounts.access_token_saved")
def access_token_saved(sender, instance: AccessToken, created: bool, raw: bool = False, **kwargs) -> None:
    if not created and not raw and instance.revoked_at is not None:
        credentials_revoked()


@receiver(post_delete, sender=AccessToken, dispatch_uid="accounts.access_token_deleted")
@receiver(post_delete, sender=OrganizationAccessToken, dispatch_uid="accounts.organization_access_token_deleted")
@receiver(post_delete, sender=User, dispatch_uid="accounts.user_deleted")
def credentials_deleted(sender, **kwargs) -> None:
    credentials_revoked()


@receiver(user_logged_in, dispatch_uid="accounts.audit_sign_in")
def audit_sign_in(sender, request, user, **kwargs) -> None:
    """A web session began (the Hub API's logins are recorded where they are checked); through single
    sign-on, with the provider."""
    data = {"door": "web"}
    first_factors = [record for record in (get_authentication_records(request, user) if request is not None else [])
                     if record.get("method") != "mfa"]
    if first_factors and first_factors[-1].get("method") == "socialaccount":
        data = {"door": "sso", "provider": str(first_factors[-1].get("provider") or "")}
    audit.record("account.login", account=audit.user_account(user), name=user.username, actor=user,
                 address=client_address(request) if request is not None else "", data=data)


@receiver(user_login_failed, dispatch_uid="accounts.audit_failed_sign_in")
def audit_failed_sign_in(sender, credentials, request=None, **kwargs) -> None:
    """A failed web sign-in, for an account that exists (throttled attempts never get this far)."""
    identifier = credentials.get("username") or credentials.get("email") or credentials.get("login") or ""
    user = account_for_identifier(identifier) if isinstance(identifier, str) and identifier else None
    if user is not None:
        audit.record("account.login_failed", account=audit.user_account(user), name=user.username, actor=user,
                     address=client_address(request) if request is not None else "", data={"door": "web"})
