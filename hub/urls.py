"""Every app mounted on one site: the registry at /v2/ and /token, pages and the Hub API."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as account_views
from accounts import views_sso
from hub import activity, views
from registry import urls as registry_urls

admin.site.site_header = admin.site.site_title = f"{settings.HUB_SITE_NAME} administration"
admin.site.site_url = "/"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("status", views.status, name="status"),
    path("metrics", views.metrics, name="metrics"),  # only with HUB_METRICS_TOKEN (README, "Metrics")
    path("", include("registry.urls")),
    path("", views.home, name="home"),
    path("accounts/login/", account_views.LoginView.as_view(), name="account_login"),  # 429 when throttled
    # Single sign-on's pages exist only with providers configured (HUB_OIDC_PROVIDERS; README, "Single sign-on").
    *([] if settings.HUB_OIDC_PROVIDERS else [re_path(r"^accounts/(3rdparty|social|oidc)/", views.not_found)]),
    path("accounts/oidc/<str:provider_id>/login/", views_sso.oidc_login, name="openid_connect_login"),
    path("accounts/oidc/<str:provider_id>/login/callback/", views_sso.oidc_callback, name="openid_connect_callback"),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),  # registers the account_name converter used below
    path("settings/activity", activity.activity, name="account_activity"),
    path("orgs/<account_name:name>/activity", activity.activity, name="org_activity"),
    path("", include("repositories.urls")),
    path("", include("webhooks.urls")),
    # The Hub JSON API shares /v2/ with the registry: registry shapes are matched first (above),
    # API path words are reserved namespace names, and anything else under /v2/ gets the registry's 404.
    path("", include("builds.urls")),
    path("", include("hub.api_urls")),
    path("admin/", admin.site.urls),
    *registry_urls.fallback_urlpatterns,
]

handler404 = "hub.views.not_found"
handler500 = "hub.views.server_error"
