"""Hub API for builds, with the repository API's permission rule (repositories.api.RepositoryScopedMixin):
who may pull sees builds and their logs; admins manage the source, the rules and the builds."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from builds import logs, services
from builds import serializers as s
from builds.models import Build, BuildRule, BuildSource
from repositories.api import RepositoryScopedMixin
from repositories.models import Repository
from repositories.permissions import ADMIN, PULL


class BuildSourceViewSet(RepositoryScopedMixin, GenericViewSet):
    serializer_class = s.BuildSourceSerializer
    queryset = BuildSource.objects.none()  # for the schema generator: the views look the source up themselves
    needed = {"retrieve": ADMIN, "update": ADMIN, "destroy": ADMIN}
    pagination_class = None

    def _source(self, repository: Repository) -> BuildSource:
        source = BuildSource.objects.filter(repository=repository).first()
        if source is None:
            raise exceptions.NotFound("This repository has no build source.")
        return source

    def get_object(self) -> BuildSource:
        return self._source(self.get_repository())

    def retrieve(self, request: Request, namespace: str, repository: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=s.BuildSourceInputSerializer, responses=s.BuildSourceSerializer)
    def update(self, request: Request, namespace: str, repository: str) -> Response:
        repo = self.get_repository()
        data = s.BuildSourceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        source, token = services.build_source_link(
            repository=repo, url=values["url"], default_branch=values["default_branch"], user=request.user,
            webhook_secret=values.get("webhook_secret"))
        if token is None and values["rotate_token"]:
            token = services.build_source_rotate_token(source=source)
        context = {**self.get_serializer_context(),
                   "trigger_url": services.trigger_url(source, token) if token else None}
        return Response(s.BuildSourceSerializer(source, context=context).data,
                        status=status.HTTP_201_CREATED if token and not values["rotate_token"] else status.HTTP_200_OK)

    def destroy(self, request: Request, namespace: str, repository: str) -> Response:
        repo = self.get_repository()
        self._source(repo)
        services.build_source_unlink(repository=repo)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BuildRuleViewSet(RepositoryScopedMixin, GenericViewSet):
    serializer_class = s.BuildRuleSerializer
    needed = {"list": ADMIN, "create": ADMIN, "retrieve": ADMIN, "partial_update": ADMIN, "destroy": ADMIN}
    pagination_class = None

    def _rule(self, repository: Repository, pk: str) -> BuildRule:
        rule = BuildRule.objects.filter(repository=repository, pk=pk).first()
        if rule is None:
            raise exceptions.NotFound("No such build rule.")
        return rule

    def list(self, request: Request, namespace: str, repository: str) -> Response:
        rules = BuildRule.objects.filter(repository=self.get_repository())
        return Response(self.get_serializer(rules, many=True).data)

    def create(self, request: Request, namespace: str, repository: str) -> Response:
        repo = self.get_repository()
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = services.build_rule_create(repository=repo, **data.validated_data)
        return Response(self.get_serializer(rule).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        return Response(self.get_serializer(self._rule(self.get_repository(), pk)).data)

    def partial_update(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        rule = self._rule(self.get_repository(), pk)
        data = self.get_serializer(rule, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = services.build_rule_update(rule=rule, **data.validated_data)
        return Response(self.get_serializer(rule).data)

    def destroy(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        services.build_rule_delete(rule=self._rule(self.get_repository(), pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BuildViewSet(RepositoryScopedMixin, GenericViewSet):
    serializer_class = s.BuildSerializer
    needed = {"list": PULL, "retrieve": PULL, "create": ADMIN, "cancel": ADMIN, "retry": ADMIN}

    def get_queryset(self) -> QuerySet[Build]:
        return Build.objects.filter(repository=self.get_repository()).order_by("-created", "-id")

    def _build(self, pk: str) -> Build:
        build = self.get_queryset().filter(pk=pk).first()
        if build is None:
            raise exceptions.NotFound("No such build.")
        return build

    def list(self, request: Request, namespace: str, repository: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(responses=s.BuildDetailSerializer)
    def retrieve(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        build = self._build(pk)
        start = request.query_params.get("start", "0")
        chunk = logs.log_read(build, int(start) if start.isdigit() else 0)
        body = s.BuildDetailSerializer(build, context={"log": "\n".join(chunk.lines)}).data
        return Response({**body, "log_next": chunk.next_start})

    @extend_schema(request=s.BuildStartSerializer, responses=s.BuildSerializer(many=True))
    def create(self, request: Request, namespace: str, repository: str) -> Response:
        repo = self.get_repository()
        data = s.BuildStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ref = data.validated_data["ref"]
        if ref and not ref.startswith("refs/"):
            ref = f"refs/heads/{ref}"
        builds = services.build_start_manual(repository=repo, user=request.user, ref=ref,
                                             commit=data.validated_data["commit"])
        return Response(self.get_serializer(builds, many=True).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=s.BuildSerializer)
    def cancel(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        build = services.build_cancel(build=self._build(pk))
        return Response(self.get_serializer(build).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=s.BuildSerializer)
    def retry(self, request: Request, namespace: str, repository: str, pk: str) -> Response:
        build = services.build_retry(build=self._build(pk), user=request.user)
        return Response(self.get_serializer(build).data, status=status.HTTP_202_ACCEPTED)
