"""The webhook API under /v2/repositories/<namespace>/<name>/webhooks/: same permission as the web tab
(repository admin; anyone else gets 404). Views parse with an input serializer and call services.

The secret and the custom header values are write-only: responses never carry them (header values,
also in a delivery's request_headers, are masked by the serializers; see services.HEADER_MASK)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.api import request_actor
from repositories.models import Repository
from repositories.permissions import ADMIN, repository_actions
from webhooks import services
from webhooks.models import Delivery, Webhook
from webhooks.serializers import DeliverySerializer, WebhookInputSerializer, WebhookSerializer


class RepositoryAdminMixin:
    permission_classes = [IsAuthenticated]

    def repository(self) -> Repository:
        if not hasattr(self, "_repository"):
            repository = (Repository.objects.select_related("namespace")
                          .filter(namespace__name=self.kwargs["namespace"], name=self.kwargs["name"],
                                  namespace__deleted_at=None, is_pending=False).first())
            if repository is None or ADMIN not in repository_actions(request_actor(self.request), repository):
                raise Http404("No such repository")
            self._repository = repository
        return self._repository

    def webhook(self) -> Webhook:
        return get_object_or_404(Webhook, pk=self.kwargs["pk"], repository=self.repository())


@extend_schema(tags=["webhooks"])
class WebhookListApi(RepositoryAdminMixin, generics.ListAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        return Webhook.objects.filter(repository=self.repository()).order_by("pk")

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookSerializer},
                   summary="Create a webhook (the secret and the header values are write-only)")
    def post(self, request, *args, **kwargs):
        repository = self.repository()
        data = WebhookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        webhook = services.webhook_create(
            repository=repository, name=values["name"], url=values["hook_url"], events=values["events"],
            secret=values.get("secret", ""), headers=values["headers"], active=values["active"], user=request.user,
        )
        return Response(WebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class WebhookDetailApi(RepositoryAdminMixin, APIView):
    serializer_class = WebhookSerializer

    @extend_schema(responses=WebhookSerializer)
    def get(self, request, *args, **kwargs):
        return Response(WebhookSerializer(self.webhook()).data)

    @extend_schema(
        request=WebhookInputSerializer, responses=WebhookSerializer,
        summary="Change a webhook (only the fields given; secret \"\" removes the secret)",
        description=f"`headers`, when given, replaces the custom headers: names left out are removed, a value of "
                    f"\"{services.HEADER_MASK}\" (as GET shows every value) keeps the saved value, any other "
                    f"value replaces it. A header that has no saved value cannot be sent masked. Moving "
                    f"`hook_url` to another host needs the header values again (saved ones are not sent there).",
    )
    def patch(self, request, *args, **kwargs):
        webhook = self.webhook()
        data = WebhookInputSerializer(webhook, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = {key: value for key, value in data.validated_data.items() if key in request.data}
        services.webhook_update(
            webhook=webhook, name=values.get("name"), url=values.get("hook_url"), events=values.get("events"),
            secret=values.get("secret"), headers=values.get("headers"), active=values.get("active"),
        )
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(responses={204: None})
    def delete(self, request, *args, **kwargs):
        services.webhook_delete(webhook=self.webhook())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["webhooks"])
class DeliveryListApi(RepositoryAdminMixin, generics.ListAPIView):
    serializer_class = DeliverySerializer

    def get_queryset(self):
        return Delivery.objects.filter(webhook=self.webhook()).order_by("-created_at")


@extend_schema(tags=["webhooks"])
class DeliveryRedeliverApi(RepositoryAdminMixin, APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer},
                   summary="Send a delivery's payload again (a new delivery)")
    def post(self, request, *args, **kwargs):
        delivery = get_object_or_404(Delivery, pk=self.kwargs["delivery_id"], webhook=self.webhook())
        copy = services.delivery_redeliver(delivery=delivery)
        return Response(DeliverySerializer(copy).data, status=status.HTTP_202_ACCEPTED)
