"""Repository pages, search and explore. Mounted at the site root (hub/urls.py).

Every repository page exists twice: `/r/<namespace>/<name>/…` and, for official images,
`/_/<name>/…` (named `official_<page>`); `/r/library/<name>` redirects to `/_/<name>`.
"""

from django.urls import path, register_converter

from oci.names import COMPONENT_PATTERN, TAG_PATTERN
from repositories import views


class NamespaceConverter:
    regex = r"[a-z0-9_-]{1,30}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class RepositoryNameConverter(NamespaceConverter):
    regex = COMPONENT_PATTERN


class TagConverter(NamespaceConverter):
    regex = TAG_PATTERN


class TeamConverter(NamespaceConverter):
    regex = r"[A-Za-z0-9_-]{1,30}"


register_converter(NamespaceConverter, "repo_ns")
register_converter(RepositoryNameConverter, "repo_name")
register_converter(TagConverter, "repo_tag")
register_converter(TeamConverter, "repo_team")

app_name = "repositories"

REPOSITORY_PAGES = [
    ("", views.repository_overview, "overview"),
    ("/tags", views.repository_tags, "tags"),
    ("/tags/<repo_tag:tag>", views.tag_detail, "tag_detail"),
    ("/tags/<repo_tag:tag>/delete", views.tag_delete, "tag_delete"),
    ("/stats", views.repository_stats, "stats"),
    ("/star", views.repository_star, "star"),
    ("/collaborators", views.repository_collaborators, "collaborators"),
    ("/collaborators/<repo_team:username>/remove", views.collaborator_remove, "collaborator_remove"),
    ("/permissions", views.repository_permissions, "permissions"),
    ("/permissions/<repo_team:team>/remove", views.permission_remove, "permission_remove"),
    ("/settings", views.repository_settings, "settings"),
    ("/settings/visibility", views.repository_visibility, "visibility"),
    ("/settings/immutable-tags", views.repository_immutable_tags, "immutable_tags"),
    ("/settings/retention", views.repository_retention, "retention"),
    ("/delete", views.repository_delete, "delete"),
]

urlpatterns = [
    path("repository/create", views.repository_create, name="create"),
    path("search", views.search, name="search"),
    path("explore", views.explore, name="explore"),
]
for suffix, view, page in REPOSITORY_PAGES:
    urlpatterns += [
        path(f"r/<repo_ns:namespace>/<repo_name:name>{suffix}", view, name=page),
        path(f"_/<repo_name:name>{suffix}", view, {"namespace": "library"}, name=f"official_{page}"),
    ]
