"""Hub JSON API for accounts: login (JWT), users, organizations, teams and personal access tokens."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from accounts import audit
from accounts import serializers as s
from accounts.credentials import AccessTokenRequired, TooManyAttempts, authenticate_credentials, client_address
from accounts.models import AccessToken, Namespace, Organization, Team, User
from accounts.services import (
    access_token_create,
    access_token_revoke,
    organization_create,
    organization_delete,
    team_add_member,
    team_create,
    team_delete,
    team_remove_member,
    team_update,
    user_access_tokens,
)
from hub.api import AtomicScopedRateThrottle, issue_api_token, request_access_token, service_errors_on
from registry.services.quotas import namespace_usage
from repositories.permissions import may_admin_organization

NOT_FOUND = "Object not found."
BAD_CREDENTIALS = ("Incorrect authentication credentials. Accounts with two-factor authentication "
                   "must use a personal access token instead of the password.")


class _CredentialsView(APIView):
    """Trades credentials (a password, or a personal access token) for a Hub API JWT."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AtomicScopedRateThrottle]
    throttle_scope = "login"

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'  # so bad credentials are a 401, not a 403

    def initial(self, request: Request, *args, **kwargs) -> None:
        # The login rate counts every request, malformed ones included: before content negotiation
        # (a 406) can answer, and before the body is parsed or validated.
        self.check_throttles(request)
        self._rate_counted = True
        super().initial(request, *args, **kwargs)

    def check_throttles(self, request: Request) -> None:
        if not getattr(self, "_rate_counted", False):
            super().check_throttles(request)

    def _jwt_for(self, request: Request, username: str, secret: str) -> str:
        try:
            result = authenticate_credentials(username, secret, remote_addr=client_address(request), door="api")
        except TooManyAttempts as exc:
            raise exceptions.Throttled(wait=exc.retry_after, detail="Too many failed login attempts.") from None
        except AccessTokenRequired as exc:
            raise exceptions.AuthenticationFailed(f"Incorrect authentication credentials: {exc}.") from None
        if result is None:
            raise exceptions.AuthenticationFailed(BAD_CREDENTIALS)
        return issue_api_token(user=result.user, token=result.token)


class LoginView(_CredentialsView):
    @extend_schema(request=s.LoginSerializer, responses={200: s.LoginResponseSerializer}, auth=[],
                   summary="Log in: a JWT for `Authorization: Bearer` (password or personal access token)")
    def post(self, request: Request) -> Response:
        data = s.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = self._jwt_for(request, data.validated_data["username"], data.validated_data["password"])
        return Response({"token": token})


class AuthTokenView(_CredentialsView):
    @extend_schema(request=s.AuthTokenSerializer, responses={200: s.AuthTokenResponseSerializer}, auth=[],
                   summary="A JWT from an identifier and a secret (personal access token)")
    def post(self, request: Request) -> Response:
        data = s.AuthTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = self._jwt_for(request, data.validated_data["identifier"], data.validated_data["secret"])
        return Response({"access_token": token})


class NotByAccessToken(BasePermission):
    """Account management needs a login by password (or a repo:admin token), like Docker Hub's."""

    message = "This needs a login with your password or an access token with the repo:admin scope."

    def has_permission(self, request: Request, view) -> bool:
        token = request_access_token(request)
        # A token limited to one repository (a build's) never manages accounts, whatever its scope.
        return token is None or (token.scope == AccessToken.Scope.ADMIN and token.repository_id is None)


class _NamespaceSettingView(APIView):
    """One staff-set value of an account or organization (its plan): the account itself, an
    organization's owners and staff read it; only staff change it; anyone else gets the 404 an unknown
    name gets. Subclasses name the model field, the request body's key and serializer, and the answer."""

    permission_classes = [IsAuthenticated, NotByAccessToken]
    field: str
    body_key: str
    body_serializer: type
    audit_action: str
    refusal: str

    def _namespace(self, request: Request, namespace: str) -> Namespace:
        found = (Namespace.objects.select_related("user", "organization")
                 .filter(name=namespace.lower(), deleted_at=None,
                         kind__in=[Namespace.Kind.USER, Namespace.Kind.ORGANIZATION]).first())
        if found is None or not (request.user.is_staff or audit.may_read(request.user, found)):
            raise exceptions.NotFound(NOT_FOUND)
        return found

    @staticmethod
    def _data(found: Namespace) -> dict:
        raise NotImplementedError

    def get(self, request: Request, namespace: str) -> Response:
        return Response(self._data(self._namespace(request, namespace)))

    def patch(self, request: Request, namespace: str) -> Response:
        found = self._namespace(request, namespace)
        if not request.user.is_staff:
            raise exceptions.PermissionDenied(self.refusal)
        serializer = self.body_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        value = serializer.validated_data[self.body_key]
        with transaction.atomic():
            setattr(found, self.field, value)
            found.save(update_fields=[self.field])
            audit.record(self.audit_action, account=found, name=found.name, data={self.body_key: value})
        return Response(self._data(found))


class NamespacePullLimitView(_NamespaceSettingView):
    """`/v2/namespaces/<namespace>/pull-limit`: an account's or organization's pull limit (its plan).
    Registry tokens carry the limit they were issued with, so a change reaches a client with its next
    token (within HUB_REGISTRY_TOKEN_TTL)."""

    field, body_key, body_serializer = "pull_limit", "pull_limit", s.PullLimitSerializer
    audit_action, refusal = "namespace.pull_limit", "Only staff set pull limits."

    @staticmethod
    def _data(found: Namespace) -> dict:
        return {"namespace": found.name, "pull_limit": found.pull_limit,
                "default_pull_limit": settings.HUB_PULL_LIMIT_USER,
                "window_seconds": settings.HUB_PULL_LIMIT_WINDOW_SECONDS,
                "pull_limits_on": bool(settings.HUB_PULL_LIMIT_ANONYMOUS or settings.HUB_PULL_LIMIT_USER)}

    @extend_schema(summary="An account's or organization's pull limit", responses=s.PullLimitSerializer)
    def get(self, request: Request, namespace: str) -> Response:
        return super().get(request, namespace)

    @extend_schema(summary="Set an account's or organization's pull limit (staff)", request=s.PullLimitSerializer,
                   responses=s.PullLimitSerializer)
    def patch(self, request: Request, namespace: str) -> Response:
        return super().patch(request, namespace)


class NamespaceStorageView(_NamespaceSettingView):
    """`/v2/namespaces/<namespace>/storage`: what an account or organization stores, and its quota.
    `quota_bytes` is the namespace's own quota (null: the site's `default_quota_bytes`; 0: none)."""

    field, body_key, body_serializer = "storage_quota_bytes", "quota_bytes", s.StorageQuotaSerializer
    audit_action, refusal = "namespace.storage_quota", "Only staff set storage quotas."

    @staticmethod
    def _data(found: Namespace) -> dict:
        return {"namespace": found.name, "quota_bytes": found.storage_quota_bytes,
                "usage_bytes": namespace_usage(namespace_id=found.pk),
                "default_quota_bytes": settings.HUB_NAMESPACE_QUOTA_BYTES}

    @extend_schema(summary="An account's or organization's storage usage and quota", responses=s.StorageSerializer)
    def get(self, request: Request, namespace: str) -> Response:
        return super().get(request, namespace)

    @extend_schema(summary="Set an account's or organization's storage quota (staff)",
                   request=s.StorageQuotaSerializer, responses=s.StorageSerializer)
    def patch(self, request: Request, namespace: str) -> Response:
        return super().patch(request, namespace)


class UserViewSet(GenericViewSet):
    """`/v2/users/<name>/`: a user's (or an organization's) public profile."""

    serializer_class = s.AccountSerializer
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[a-z0-9]+"
    queryset = User.objects.none()

    @extend_schema(summary="A user's or an organization's public profile")
    def retrieve(self, request: Request, username: str) -> Response:
        namespace = (Namespace.objects.select_related("user", "organization")
                     .filter(name=username, deleted_at=None).first())
        if namespace is not None and namespace.user is not None and namespace.user.is_active:
            return Response(s.user_data(namespace.user))
        if namespace is not None and namespace.organization is not None:
            org = namespace.organization
            return Response(s.account_data(id=org.pk, username=org.name, full_name=org.full_name,
                                           location=org.location, company=org.company,
                                           date_joined=org.created_at, type="Organization"))
        raise exceptions.NotFound(NOT_FOUND)


class OrganizationViewSet(GenericViewSet):
    """`/v2/orgs/` (create), `/v2/orgs/<org>/` (public; owners delete) and `/v2/orgs/<org>/members` (members)."""

    serializer_class = s.OrganizationSerializer
    lookup_url_kwarg = "org"
    lookup_value_regex = r"[a-z0-9]+"
    queryset = Organization.objects.all()

    def get_permissions(self):
        if self.action in ("create", "destroy"):
            return [IsAuthenticated(), NotByAccessToken()]
        if self.action == "members":
            return [IsAuthenticated()]
        return [AllowAny()]

    def _organization(self) -> Organization:
        organization = Organization.objects.filter(name=self.kwargs["org"]).first()
        if organization is None:
            raise exceptions.NotFound(NOT_FOUND)
        return organization

    @extend_schema(request=s.OrganizationCreateSerializer, responses={201: s.OrganizationSerializer},
                   summary="Create an organization (you become its first owner)")
    def create(self, request: Request) -> Response:
        data = s.OrganizationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on(data.name_field):
            organization = organization_create(owner=request.user, **data.validated_data)
        return Response(self.get_serializer(organization).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="An organization")
    def retrieve(self, request: Request, org: str) -> Response:
        return Response(self.get_serializer(self._organization()).data)

    @extend_schema(responses={204: None},
                   summary="Delete an organization with no repositories left (owners); its name is never reused")
    def destroy(self, request: Request, org: str) -> Response:
        organization = self._organization()
        if not may_admin_organization(request.user, organization):
            raise exceptions.PermissionDenied("Only the organization's owners delete it.")
        organization_delete(organization=organization)  # a ValidationError is a 400 `detail` (exception_handler)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.AccountSerializer(many=True), summary="An organization's members (members only)")
    @action(detail=True, methods=["get"], url_path="members")
    def members(self, request: Request, org: str) -> Response:
        organization = self._organization()
        if not organization.is_member(request.user):
            raise exceptions.PermissionDenied("Only members see an organization's members.")
        page = self.paginate_queryset(organization.members().order_by("username"))
        return self.get_paginated_response([s.user_data(user) for user in page])


class TeamViewSet(GenericViewSet):
    """`/v2/orgs/<org>/groups[/<team>[/members[/<user>]]]`: members read, owners change (create, edit, delete)."""

    serializer_class = s.TeamSerializer
    lookup_url_kwarg = "team"
    lookup_value_regex = r"[A-Za-z0-9_-]{1,30}"
    permission_classes = [IsAuthenticated]
    queryset = Team.objects.none()

    def _organization(self, *, owner: bool = False) -> Organization:
        organization = Organization.objects.filter(name=self.kwargs["org"]).first()
        if organization is None:
            raise exceptions.NotFound(NOT_FOUND)
        if not organization.is_member(self.request.user):
            raise exceptions.PermissionDenied("Only members of the organization see its teams.")
        if owner:
            if not organization.is_owner(self.request.user):
                raise exceptions.PermissionDenied("Only the organization's owners change its teams.")
            if not NotByAccessToken().has_permission(self.request, self):
                raise exceptions.PermissionDenied(NotByAccessToken.message)
        return organization

    def _team(self, *, owner: bool = False) -> Team:
        team = self._organization(owner=owner).teams.filter(name=self.kwargs["team"]).first()
        if team is None:
            raise exceptions.NotFound(NOT_FOUND)
        return team

    @extend_schema(summary="An organization's teams")
    def list(self, request: Request, org: str) -> Response:
        page = self.paginate_queryset(self._organization().teams.order_by("name"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.TeamCreateSerializer, responses={201: s.TeamSerializer}, summary="Create a team")
    def create(self, request: Request, org: str) -> Response:
        organization = self._organization(owner=True)
        data = s.TeamCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on("name"):
            team = team_create(organization=organization, **data.validated_data)
        return Response(self.get_serializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="A team")
    def retrieve(self, request: Request, org: str, team: str) -> Response:
        return Response(self.get_serializer(self._team()).data)

    @extend_schema(request=s.TeamUpdateSerializer, responses=s.TeamSerializer,
                   summary="Rename a team or change its description (owners; the owners team keeps its name)")
    def partial_update(self, request: Request, org: str, team: str) -> Response:
        found = self._team(owner=True)
        data = s.TeamUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on("name"):
            found = team_update(team=found, **data.validated_data)
        return Response(self.get_serializer(found).data)

    @extend_schema(responses={204: None}, summary="Delete a team (not the owners)")
    def destroy(self, request: Request, org: str, team: str) -> Response:
        team_delete(team=self._team(owner=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses=s.AccountSerializer(many=True), summary="A team's members")
    @extend_schema(methods=["POST"], request=s.MemberCreateSerializer, responses={201: s.AccountSerializer},
                   summary="Add a member to a team")
    @action(detail=True, methods=["get", "post"], url_path="members")
    def members(self, request: Request, org: str, team: str) -> Response:
        if request.method == "GET":
            members = self._team().members.order_by("username")
            page = self.paginate_queryset(members)
            return self.get_paginated_response([s.user_data(user) for user in page])
        found = self._team(owner=True)
        data = s.MemberCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on("member"):
            membership = team_add_member(team=found, username=data.validated_data["member"])
        return Response(s.user_data(membership.user), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, summary="Remove a member from a team")
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[a-z0-9]+)")
    def remove_member(self, request: Request, org: str, team: str, username: str) -> Response:
        found = self._team(owner=True)
        user = found.members.filter(username=username).first()
        if user is None:
            raise exceptions.NotFound(NOT_FOUND)
        team_remove_member(team=found, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccessTokenViewSet(GenericViewSet):
    """`/v2/access-tokens[/<id>]`: your personal access tokens. The secret is shown once, on creation."""

    serializer_class = s.AccessTokenSerializer
    permission_classes = [IsAuthenticated, NotByAccessToken]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[AccessToken]:
        return user_access_tokens(user=self.request.user).order_by("-created_at", "-pk")

    @extend_schema(summary="Your access tokens")
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.AccessTokenCreateSerializer, responses={201: s.AccessTokenSerializer},
                   summary="Create an access token (its secret is in `token`, shown only this once)")
    def create(self, request: Request) -> Response:
        data = s.AccessTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            token, secret = access_token_create(user=request.user, label=values["token_label"],
                                                scope=values["scopes"], expires_at=values["expires_at"])
        except DjangoValidationError as exc:
            field = {"label": "token_label", "scope": "scopes", "expiry": "expires_at"}.get(exc.code, "detail")
            raise exceptions.ValidationError({field: exc.messages}) from None
        body = s.AccessTokenSerializer(token, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(summary="One access token (without its secret)")
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=s.AccessTokenUpdateSerializer, responses=s.AccessTokenSerializer,
                   summary="Rename or deactivate a token (a deactivated token cannot come back)")
    def partial_update(self, request: Request, pk: str) -> Response:
        token = self.get_object()
        data = s.AccessTokenUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values.get("is_active") is True and not token.is_active():
            raise exceptions.ValidationError({"is_active": ["A revoked or expired token cannot be reactivated."]})
        if values.get("is_active") is False:
            access_token_revoke(token=token)
        if "token_label" in values and values["token_label"].strip():
            token.label = values["token_label"].strip()
            token.save(update_fields=["label"])
        return Response(self.get_serializer(token).data)

    @extend_schema(responses={204: None}, summary="Delete an access token")
    def destroy(self, request: Request, pk: str) -> Response:
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
