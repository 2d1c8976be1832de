"""Builds: the Hub API under /v2/repositories/<ns>/<repo>/…, the inbound triggers under /api/build/,
the build workers' calls under /api/build-worker/, the Builds tab under /r/<ns>/<repo>/builds, and
/signing-key.pub. Mounted before the repository API."""

from django.urls import path, re_path

from builds import api, hooks, views, worker_api
from repositories.api import NAMESPACE_PATTERN, REPOSITORY_PATTERN

app_name = "builds"

REPO = rf"^v2/repositories/(?P<namespace>{NAMESPACE_PATTERN})/(?P<repository>{REPOSITORY_PATTERN})"
WEB = "r/<repo_ns:namespace>/<repo_name:name>/builds"

urlpatterns = [
    path("signing-key.pub", views.signing_key, name="signing_key"),
    path("api/build-worker/<int:build_id>/<str:action>", worker_api.worker_call, name="worker_call"),
    path("api/build/<uuid:uuid>/trigger/<str:token>/", hooks.BuildHookView.as_view(), name="hook_generic"),
    path("api/build/<uuid:uuid>/github/", hooks.GitHubHookView.as_view(), name="hook_github"),
    path("api/build/<uuid:uuid>/bitbucket/<str:token>/", hooks.BitbucketHookView.as_view(), name="hook_bitbucket"),
    re_path(rf"{REPO}/build-source/?$",
            api.BuildSourceViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
            name="api_source"),
    re_path(rf"{REPO}/build-rules/?$", api.BuildRuleViewSet.as_view({"get": "list", "post": "create"}),
            name="api_rules"),
    re_path(rf"{REPO}/build-rules/(?P<pk>[0-9]+)/?$",
            api.BuildRuleViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
            name="api_rule"),
    re_path(rf"{REPO}/builds/?$", api.BuildViewSet.as_view({"get": "list", "post": "create"}), name="api_builds"),
    re_path(rf"{REPO}/builds/(?P<pk>[0-9]+)/?$", api.BuildViewSet.as_view({"get": "retrieve"}), name="api_build"),
    re_path(rf"{REPO}/builds/(?P<pk>[0-9]+)/cancel/?$", api.BuildViewSet.as_view({"post": "cancel"}),
            name="api_build_cancel"),
    re_path(rf"{REPO}/builds/(?P<pk>[0-9]+)/retry/?$", api.BuildViewSet.as_view({"post": "retry"}),
            name="api_build_retry"),
    path(WEB, views.builds_page, name="builds"),
    path(f"{WEB}/source", views.source_link, name="source_link"),
    path(f"{WEB}/source/<str:action>", views.source_action, name="source_action"),
    path(f"{WEB}/rules", views.rule_save, name="rule_create"),
    path(f"{WEB}/rules/<int:pk>", views.rule_save, name="rule_save"),
    path(f"{WEB}/<int:pk>", views.build_page, name="build"),
    path(f"{WEB}/<int:pk>/log", views.build_log, name="build_log"),
    path(f"{WEB}/<int:pk>/<str:action>", views.build_action, name="build_action"),
]
