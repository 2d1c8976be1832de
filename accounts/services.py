"""Account, organization, team and access-token operations with side effects."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts import audit
from accounts.events import organization_deleting, user_deleting
from accounts.models import AccessToken, Membership, Namespace, Organization, Team, User
from accounts.names import validate_namespace_name
from accounts.revocation import credentials_revoked


def namespace_check_available(*, name: str) -> None:
    """Raise ValidationError when `name` cannot be claimed by a new user or organization."""
    validate_namespace_name(name)
    existing = Namespace.objects.filter(name=name).first()
    if existing is None:
        return
    if existing.is_tombstone:
        raise ValidationError(
            f"“{name}” belonged to a deleted account and cannot be reused. Please choose another name.",
            code="tombstone",
        )
    raise ValidationError(f"“{name}” is already taken. Please choose another name.", code="taken")


@transaction.atomic
def organization_create(*, name: str, owner: User, full_name: str = "", company: str = "",
                        location: str = "") -> Organization:
    """Create an organization; `owner` becomes the only member of its owners team."""
    namespace_check_available(name=name)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, full_name=full_name, company=company,
                                                       location=location)
            Namespace.objects.create(name=name, kind=Namespace.Kind.ORGANIZATION, organization=organization)
    except IntegrityError:
        raise ValidationError(f"“{name}” is already taken. Please choose another name.", code="taken") from None
    owners = Team.objects.create(
        organization=organization,
        name=Team.OWNERS,
        description="Owners have full access to every repository and setting of the organization.",
        can_create_repositories=True,
    )
    Membership.objects.create(team=owners, user=owner)
    audit.record("org.create", account=organization.namespace, name=name, actor=owner)
    return organization


def organization_delete(*, organization: Organization) -> None:
    """Delete an organization that has no repositories left; its name becomes a tombstone.

    Repositories still pending (a push that never sent its manifest, which nobody can see or delete)
    do not count: they go with the organization.
    """
    with transaction.atomic():
        namespace = Namespace.objects.select_for_update().get(organization=organization)
        organization_deleting.send(sender=Organization, namespace=namespace)  # repositories refuses or cleans up
        namespace.deleted_at = timezone.now()
        namespace.organization = None
        namespace.save(update_fields=["deleted_at", "organization"])
        organization.delete()


def _team_name_clean(*, organization: Organization, name: str, team: Team | None = None) -> str:
    """`name` normalised, or ValidationError when it is malformed, reserved or another team's."""
    name = name.strip().lower()
    if not name or len(name) > 30 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise ValidationError("Team names use 1–30 letters, digits, '-' or '_'.", code="invalid")
    if name in {"new", "members", "delete", "settings"}:
        raise ValidationError(f"“{name}” is reserved: please choose another team name.", code="reserved")
    others = organization.teams.exclude(pk=team.pk) if team is not None else organization.teams.all()
    if others.filter(name=name).exists():
        raise ValidationError(f"The organization already has a team called “{name}”.", code="taken")
    return name


def team_create(*, organization: Organization, name: str, description: str = "",
                can_create_repositories: bool = False) -> Team:
    name = _team_name_clean(organization=organization, name=name)
    with transaction.atomic():
        team = Team.objects.create(
            organization=organization, name=name, description=description,
            can_create_repositories=can_create_repositories,
        )
        audit.record("org.team.create", account=audit.organization_account(organization), name=name,
                     data={"can_create_repositories": can_create_repositories})
    return team


def team_delete(*, team: Team) -> None:
    if team.is_owners:
        raise ValidationError("The owners team cannot be deleted.", code="owners")
    with transaction.atomic():
        audit.record("org.team.delete", account=audit.organization_account(team.organization), name=team.name)
        team.delete()


def team_add_member(*, team: Team, username: str) -> Membership:
    user = User.objects.filter(username=username.strip().lower(), is_active=True).first()
    if user is None:
        raise ValidationError(f"There is no user called “{username}”.", code="unknown_user")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=team, user=user)
        if not created:
            raise ValidationError(f"{user.username} is already a member of {team.name}.", code="duplicate")
        audit.record("org.member.add", account=audit.organization_account(team.organization), name=team.name,
                     data={"member": user.username})
    return membership


def team_remove_member(*, team: Team, user: User) -> None:
    with transaction.atomic():
        if team.is_owners:
            owners = Membership.objects.select_for_update().filter(team=team)
            if owners.count() <= 1 and owners.filter(user=user).exists():
                raise ValidationError(
                    "An organization needs at least one owner: add another owner first.", code="last_owner"
                )
        deleted, _ = Membership.objects.filter(team=team, user=user).delete()
        if deleted:
            audit.record("org.member.remove", account=audit.organization_account(team.organization),
                         name=team.name, data={"member": user.username})
    if not deleted:
        raise ValidationError(f"{user.username} is not a member of {team.name}.", code="not_member")


def organization_leave(*, organization: Organization, user: User) -> None:
    with transaction.atomic():
        memberships = Membership.objects.filter(team__organization=organization, user=user)
        if not memberships.exists():
            raise ValidationError("You are not a member of this organization.", code="not_member")
        owners = Membership.objects.select_for_update().filter(team__organization=organization,
                                                                team__name=Team.OWNERS)
        if owners.filter(user=user).exists() and owners.count() <= 1:
            raise ValidationError(
                "You are the last owner: add another owner or delete the organization.", code="last_owner"
            )
        memberships.delete()
        audit.record("org.member.leave", account=audit.organization_account(organization), name=organization.name,
                     actor=user, data={"member": user.username})


def access_token_create(*, user: User, label: str, scope: str, expires_at: datetime | None = None,
                        repository=None) -> tuple[AccessToken, str]:
    """Create a token; returns it with its secret, which is never stored and shown only once.

    With `repository`, the token writes to that repository only (and pulls, at most, elsewhere)."""
    label = label.strip()
    if not label:
        raise ValidationError("Give the token a description so you can recognise it later.", code="label")
    if scope not in AccessToken.Scope.values:
        raise ValidationError(f"Unknown scope “{scope}”.", code="scope")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date must be in the future.", code="expiry")
    secret = AccessToken.generate_secret()
    with transaction.atomic():
        token = AccessToken.objects.create(
            user=user, label=label[:100], scope=scope, expires_at=expires_at, repository=repository,
            token_hash=AccessToken.hash_secret(secret), token_hint=secret[-4:],
        )
        audit.record("access_token.create", account=audit.user_account(user), name=token.label,
                     data={"scope": scope, "expires_at": expires_at.isoformat() if expires_at else None,
                           **({"repository": repository.full_name} if repository is not None else {})})
    return token, secret


def access_token_revoke(*, token: AccessToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        with transaction.atomic():
            token.save(update_fields=["revoked_at"])
            audit.record("access_token.revoke", account=audit.user_account(token.user), name=token.label,
                         data={"scope": token.scope})


def access_token_authenticate(*, username: str, secret: str) -> AccessToken | None:
    """The active token with this secret belonging to `username` (case-insensitive), or None."""
    if not AccessToken.looks_like_token(secret):
        return None
    token = (
        AccessToken.objects.select_related("user")
        .filter(token_hash=AccessToken.hash_secret(secret))
        .first()
    )
    if token is None or not token.is_active() or not token.user.is_active:
        return None
    if username and username.lower() not in {token.user.username, token.user.email.lower()}:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def user_has_mfa(user: User) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def user_credentials_end(*, user_id: int) -> None:
    """End every credential the account's password made (sessions, Hub API JWTs, refresh and registry
    tokens): they carry the credentials epoch they were issued at, which moves here."""
    User.objects.filter(pk=user_id).update(credentials_epoch=F("credentials_epoch") + 1)
    credentials_revoked()


def user_delete(*, user: User) -> None:
    """Delete an account: its repositories go, its name stays as a tombstone.

    Refused while the user is the last owner of an organization that still exists.
    """
    with transaction.atomic():
        for team in Team.objects.filter(name=Team.OWNERS, memberships__user=user):
            if team.memberships.count() <= 1:
                raise ValidationError(
                    f"You are the only owner of the organization “{team.organization.name}”: "
                    "add another owner or delete the organization first.",
                    code="last_owner",
                )
        namespace = Namespace.objects.select_for_update().get(user=user)
        user_deleting.send(sender=User, namespace=namespace, user=user)  # its repositories go
        namespace.deleted_at = timezone.now()
        namespace.user = None
        namespace.save(update_fields=["deleted_at", "user"])
        user.delete()


def user_deactivate(*, user: User) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])
    AccessToken.objects.filter(user=user, revoked_at=None).update(revoked_at=timezone.now())


def user_access_tokens(*, user: User) -> QuerySet[AccessToken]:
    """The access tokens `user` made and manages (web and API); a build's one-repository token is not one."""
    return AccessToken.objects.personal().filter(user=user)


def user_organizations(*, user: User) -> QuerySet[Organization]:
    """The organizations `user` belongs to (any team), by name."""
    return Organization.objects.filter(teams__memberships__user=user).distinct().order_by("name")


def team_update(*, team: Team, name: str | None = None, description: str | None = None,
                can_create_repositories: bool | None = None) -> Team:
    """Rename a team or change its description and repository-creation right (None leaves a value as is).

    The owners team keeps its name and its right to create repositories.
    """
    fields = []
    if name is not None:
        if team.is_owners and name.strip().lower() != Team.OWNERS:
            raise ValidationError("The owners team cannot be renamed.", code="owners")
        team.name = _team_name_clean(organization=team.organization, name=name, team=team)
        fields.append("name")
    if description is not None:
        team.description = description.strip()[:255]
        fields.append("description")
    if can_create_repositories is not None:
        team.can_create_repositories = True if team.is_owners else can_create_repositories
        fields.append("can_create_repositories")
    if fields:
        try:
            with transaction.atomic():
                team.save(update_fields=fields)
                audit.record("org.team.update", account=audit.organization_account(team.organization),
                             name=team.name, data={field: getattr(team, field) for field in fields})
        except IntegrityError:
            raise ValidationError(f"The organization already has a team called “{team.name}”.",
                                  code="taken") from None
    return team
