"""Webhook pages under /r/<namespace>/<name>/webhooks, the legacy callback, and the JSON API.

Mounted at the site root before the Hub API and the registry's /v2/ fallback (hub/urls.py).
"""

from django.urls import path

from webhooks import api, views

app_name = "webhooks"

REPO = "r/<str:namespace>/<str:name>/webhooks"
API = "v2/repositories/<str:namespace>/<str:name>/webhooks"

urlpatterns = [
    path(REPO, views.webhook_list, name="list"),
    path(f"{REPO}/new", views.webhook_create, name="create"),
    path(f"{REPO}/<int:pk>", views.webhook_detail, name="detail"),
    path(f"{REPO}/<int:pk>/toggle", views.webhook_toggle, name="toggle"),
    path(f"{REPO}/<int:pk>/delete", views.webhook_delete, name="delete"),
    path(f"{REPO}/<int:pk>/test", views.webhook_test, name="test"),
    path(f"{REPO}/<int:pk>/deliveries/<uuid:delivery_id>", views.delivery_detail, name="delivery"),
    path(f"{REPO}/<int:pk>/deliveries/<uuid:delivery_id>/redeliver", views.delivery_redeliver, name="redeliver"),
    path("u/<str:namespace>/<str:name>/hook/<str:callback_id>/", views.delivery_callback, name="callback"),
    path(f"{API}/", api.WebhookListApi.as_view(), name="api-list"),
    path(f"{API}/<int:pk>/", api.WebhookDetailApi.as_view(), name="api-detail"),
    path(f"{API}/<int:pk>/deliveries/", api.DeliveryListApi.as_view(), name="api-deliveries"),
    path(f"{API}/<int:pk>/deliveries/<uuid:delivery_id>/redeliver", api.DeliveryRedeliverApi.as_view(),
         name="api-redeliver"),
]
