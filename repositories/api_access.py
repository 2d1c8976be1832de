"""Hub JSON API for who may use a repository: collaborators (personal) and team permissions (organizations).

Only the repository's admins list or change these (403 for others who can see it, 404 for those
who cannot).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from accounts.models import Team
from hub.api import service_errors_on
from repositories import serializers as s
from repositories.api import NOT_FOUND, RepositoryScopedMixin
from repositories.models import Collaborator, TeamPermission
from repositories.services import collaborator_add, collaborator_remove, team_permission_remove, team_permission_set


class CollaboratorViewSet(RepositoryScopedMixin, GenericViewSet):
    """`/v2/repositories/<ns>/<repo>/collaborators/[<user>/]`: pull and push on a personal repository."""

    serializer_class = s.CollaboratorSerializer
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[a-z0-9]+"

    def get_queryset(self) -> QuerySet[Collaborator]:
        return Collaborator.objects.select_related("user").order_by("user__username")

    @extend_schema(summary="A repository's collaborators (admins)")
    def list(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        page = self.paginate_queryset(self.get_queryset().filter(repository=found))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.CollaboratorCreateSerializer, responses={201: s.CollaboratorSerializer},
                   summary="Add a collaborator (personal repositories)")
    def create(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        data = s.CollaboratorCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with service_errors_on("user"):
            collaborator = collaborator_add(repository=found, username=data.validated_data["user"])
        return Response(self.get_serializer(collaborator).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="Remove a collaborator")
    def destroy(self, request: Request, namespace: str, repository: str, username: str) -> Response:
        found = self.get_repository()
        try:
            collaborator_remove(repository=found, username=username)
        except DjangoValidationError:
            raise exceptions.NotFound(NOT_FOUND) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupViewSet(RepositoryScopedMixin, GenericViewSet):
    """`/v2/repositories/<ns>/<repo>/groups[/<team>]`: a team's read, write or admin on an org repository."""

    serializer_class = s.GroupPermissionSerializer
    lookup_url_kwarg = "group"
    lookup_value_regex = r"[A-Za-z0-9_-]{1,30}"

    def get_queryset(self) -> QuerySet[TeamPermission]:
        return TeamPermission.objects.select_related("team").order_by("team__name")

    def _team(self, repository, *, name: str | None = None, team_id: int | None = None) -> Team | None:
        teams = Team.objects.filter(organization_id=repository.namespace.organization_id)
        if repository.namespace.organization_id is None:
            return None
        if team_id is not None:
            return teams.filter(pk=team_id).first()
        return teams.filter(name=name).first()

    @extend_schema(summary="Teams with access to an organization repository (admins)")
    def list(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        page = self.paginate_queryset(self.get_queryset().filter(repository=found))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=s.GroupPermissionCreateSerializer, responses={200: s.GroupPermissionSerializer},
                   summary="Give a team read, write or admin (replaces its current permission)")
    def create(self, request: Request, namespace: str, repository: str) -> Response:
        found = self.get_repository()
        data = s.GroupPermissionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        team = self._team(found, name=values.get("group_name"), team_id=values.get("group_id"))
        if team is None:
            field = "group_id" if values.get("group_id") else "group_name"
            raise exceptions.ValidationError({field: ["The repository's organization has no such team."]})
        with service_errors_on("permission"):
            grant = team_permission_set(repository=found, team=team, permission=values["permission"])
        return Response(self.get_serializer(grant).data, status=status.HTTP_200_OK)

    @extend_schema(responses={204: None}, summary="Take a team's access away")
    def destroy(self, request: Request, namespace: str, repository: str, group: str) -> Response:
        found = self.get_repository()
        team = self._team(found, name=group)
        if team is None and group.isdigit():
            team = self._team(found, team_id=int(group))
        if team is None:
            raise exceptions.NotFound(NOT_FOUND)
        try:
            team_permission_remove(repository=found, team=team)
        except DjangoValidationError:
            raise exceptions.NotFound(NOT_FOUND) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
