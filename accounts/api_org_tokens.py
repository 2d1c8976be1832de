"""Hub JSON API for organization access tokens (Docker Hub's): `/v2/orgs/<org>/access-tokens[/<id>]`.

Only the organization's owners create, list, read, change and revoke them; a member who is not an
owner gets a 403, anyone else the 404 an unknown organization gets. Like every account-management
endpoint, a Hub API session made from a personal access token needs the repo:admin scope. The token's
value is in `token` in the answer to POST only. The tokens themselves never sign in here: the Hub
API's logins refuse them (accounts.credentials.OrganizationTokenNotAccepted).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from accounts.api import NOT_FOUND, NotByAccessToken
from accounts.models import Organization, OrganizationAccessToken
from accounts.org_tokens import (
    org_access_token_create,
    org_access_token_revoke,
    org_access_token_update,
    organization_access_tokens,
)


class ResourceSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="TYPE_REPO")
    path = serializers.CharField(help_text="`<org>/<name>`, a glob inside the organization (`<org>/*`), "
                                           "or `*/*/public` for every public repository.")
    scopes = serializers.ListField(child=serializers.CharField(),
                                   help_text="`scope-image-pull` and/or `scope-image-push`.")


class OrganizationAccessTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    description = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    created_by = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    resources = ResourceSerializer(many=True)
    token = serializers.SerializerMethodField(help_text="The token: only in the answer to POST, else empty.")

    def get_created_by(self, obj) -> str:
        return obj.created_by.username if obj.created_by is not None else ""

    def get_token(self, obj) -> str:
        return self.context.get("secret", "")


class OrganizationAccessTokenCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    resources = serializers.JSONField(help_text='For example [{"type": "TYPE_REPO", "path": "acme/*", '
                                                '"scopes": ["scope-image-pull", "scope-image-push"]}].')
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class OrganizationAccessTokenUpdateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


def _field_errors(error: DjangoValidationError) -> exceptions.ValidationError:
    field = error.code if error.code in {"label", "description", "resources", "expires_at"} else "detail"
    return exceptions.ValidationError({field: error.messages})


class OrganizationAccessTokenViewSet(GenericViewSet):
    """`/v2/orgs/<org>/access-tokens[/<id>]`: an organization's access tokens (owners only)."""

    serializer_class = OrganizationAccessTokenSerializer
    permission_classes = [IsAuthenticated]
    lookup_value_regex = r"[0-9]{1,18}"
    queryset = OrganizationAccessToken.objects.none()

    def _organization(self) -> Organization:
        organization = Organization.objects.filter(name=self.kwargs["org"]).first()
        if organization is None or not organization.is_member(self.request.user):
            raise exceptions.NotFound(NOT_FOUND)
        if not organization.is_owner(self.request.user):
            raise exceptions.PermissionDenied("Only the organization's owners manage its access tokens.")
        if not NotByAccessToken().has_permission(self.request, self):
            raise exceptions.PermissionDenied(NotByAccessToken.message)
        return organization

    def _token(self) -> OrganizationAccessToken:
        found = (organization_access_tokens(organization=self._organization()).select_related("created_by")
                 .filter(pk=self.kwargs["pk"]).first())
        if found is None:
            raise exceptions.NotFound(NOT_FOUND)
        return found

    @extend_schema(summary="An organization's access tokens (owners)")
    def list(self, request: Request, org: str) -> Response:
        tokens = organization_access_tokens(organization=self._organization()).select_related("created_by")
        page = self.paginate_queryset(tokens)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=OrganizationAccessTokenCreateSerializer, responses={201: OrganizationAccessTokenSerializer},
                   summary="Create an organization access token (its value is in `token`, shown only this once)")
    def create(self, request: Request, org: str) -> Response:
        organization = self._organization()
        data = OrganizationAccessTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token, secret = org_access_token_create(organization=organization, created_by=request.user,
                                                    **data.validated_data)
        except DjangoValidationError as error:
            raise _field_errors(error) from None
        body = self.get_serializer(token, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(summary="One organization access token (without its value)")
    def retrieve(self, request: Request, org: str, pk: str) -> Response:
        return Response(self.get_serializer(self._token()).data)

    @extend_schema(request=OrganizationAccessTokenUpdateSerializer, responses=OrganizationAccessTokenSerializer,
                   summary="Change an organization access token's label, description or is_active")
    def partial_update(self, request: Request, org: str, pk: str) -> Response:
        token = self._token()
        data = OrganizationAccessTokenUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token = org_access_token_update(token=token, **data.validated_data)
        except DjangoValidationError as error:
            raise _field_errors(error) from None
        return Response(self.get_serializer(token).data)

    @extend_schema(responses={204: None}, summary="Revoke an organization access token (at once, for good)")
    def destroy(self, request: Request, org: str, pk: str) -> Response:
        org_access_token_revoke(token=self._token())
        return Response(status=status.HTTP_204_NO_CONTENT)
