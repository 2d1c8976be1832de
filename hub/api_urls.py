"""Hub JSON API routes (Docker Hub's paths), mounted at the site root after the registry's routes.

The registry's shapes (`…/blobs/…`, `…/manifests/…`, `…/tags/list`, `…/referrers/…`, `/_catalog`) are
matched first in hub/urls.py; the words used here (`repositories`, `namespaces`, `users`, `orgs`,
`search`, `auth`, `access-tokens`) are reserved namespace names, so no repository path collides.
APPEND_SLASH is off: every route takes its path with or without the trailing slash (a POST is never
redirected). One exception follows from the registry going first: a tag named `list` must be
addressed with the trailing slash (`…/tags/list/`), since `…/tags/list` is the registry's tag list.
"""

from django.conf import settings
from django.urls import re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts.api import (
    AccessTokenViewSet,
    AuthTokenView,
    LoginView,
    NamespacePullLimitView,
    NamespaceStorageView,
    OrganizationViewSet,
    TeamViewSet,
    UserViewSet,
)
from accounts.api_org_tokens import OrganizationAccessTokenViewSet
from hub.activity import AuditActionsView, AuditLogView
from repositories.api import (
    NAMESPACE_PATTERN,
    REPOSITORY_PATTERN,
    LegacyRepositoryCreateViewSet,
    NamespaceRepositoryViewSet,
    RepositoryViewSet,
    SearchViewSet,
    StarredViewSet,
    TagViewSet,
)
from repositories.api_access import CollaboratorViewSet, GroupViewSet

NS = rf"(?P<namespace>{NAMESPACE_PATTERN})"
REPO = rf"(?P<repository>{REPOSITORY_PATTERN})"
ACCOUNT = r"[a-z0-9]+"


class HubRouter(SimpleRouter):
    """Every route with or without its trailing slash (DRF's constructor only takes True or False)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI (the committed copy under static/vendor/swagger-ui) inside the site's frame, after a
    word on authentication (templates/hub/api_docs.html)."""

    template_name = "hub/api_docs.html"
    http_method_names = ["get", "head"]  # OPTIONS would render DRF's metadata through the HTML template

    @extend_schema(exclude=True)  # like the parent's get: the docs page is not part of the API
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response.data["token_minutes"] = settings.HUB_API_TOKEN_TTL // 60
        return response


router = HubRouter()
router.register(rf"v2/namespaces/{NS}/repositories", NamespaceRepositoryViewSet, basename="api-ns-repository")
router.register(rf"v2/namespaces/{NS}/repositories/{REPO}/tags", TagViewSet, basename="api-ns-tag")
router.register(r"v2/repositories", LegacyRepositoryCreateViewSet, basename="api-repository-create")
router.register(rf"v2/repositories/{NS}", RepositoryViewSet, basename="api-repository")
router.register(rf"v2/repositories/{NS}/{REPO}/tags", TagViewSet, basename="api-tag")
router.register(rf"v2/repositories/{NS}/{REPO}/collaborators", CollaboratorViewSet, basename="api-collaborator")
router.register(rf"v2/repositories/{NS}/{REPO}/groups", GroupViewSet, basename="api-group")
router.register(r"v2/search/repositories", SearchViewSet, basename="api-search")
router.register(rf"v2/users/(?P<username>{ACCOUNT})/starred", StarredViewSet, basename="api-starred")
router.register(r"v2/users", UserViewSet, basename="api-user")
router.register(r"v2/orgs", OrganizationViewSet, basename="api-org")
router.register(rf"v2/orgs/(?P<org>{ACCOUNT})/groups", TeamViewSet, basename="api-team")
router.register(rf"v2/orgs/(?P<org>{ACCOUNT})/access-tokens", OrganizationAccessTokenViewSet,
                basename="api-org-access-token")
router.register(r"v2/access-tokens", AccessTokenViewSet, basename="api-access-token")

urlpatterns = [
    re_path(r"^v2/users/login/?$", LoginView.as_view(), name="api-login"),
    re_path(r"^v2/auth/token/?$", AuthTokenView.as_view(), name="api-auth-token"),
    re_path(rf"^v2/auditlogs/(?P<account>{ACCOUNT})/?$", AuditLogView.as_view(), name="api-auditlogs"),
    re_path(rf"^v2/auditlogs/(?P<account>{ACCOUNT})/actions/?$", AuditActionsView.as_view(),
            name="api-auditlog-actions"),
    re_path(rf"^v2/namespaces/{NS}/pull-limit/?$", NamespacePullLimitView.as_view(), name="api-pull-limit"),
    re_path(rf"^v2/namespaces/{NS}/storage/?$", NamespaceStorageView.as_view(), name="api-storage"),
    *router.urls,
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="api-schema"),
    re_path(r"^api/docs/?$", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
]
