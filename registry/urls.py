"""Registry routes. Exact paths (no slash appending): the shapes clients send."""

from django.urls import path, re_path

from registry import tokens
from registry.views import blobs, listing, manifests, search

# Empty components too (NAME_INVALID, not a 404). A name of three or more components under a Hub API
# word (`/v2/repositories/alice/app/tags/list`) is no valid repository: leave it to the Hub API.
NAME = r"(?P<name>(?!(?:repositories|namespaces|users|orgs)/[^/]*/)[^/]*(?:/[^/]*)*?)"

urlpatterns = [
    path("token", tokens.token_view, name="registry-token"),
    path("v1/_ping", search.ping, name="registry-v1-ping"),
    path("v1/search", search.search, name="registry-v1-search"),
    path("v2/", listing.BaseView.as_view(), name="registry-base"),
    path("v2/_catalog", listing.CatalogView.as_view(), name="registry-catalog"),
    re_path(rf"^v2/{NAME}/tags/list$", listing.TagsListView.as_view(), name="registry-tags"),
    re_path(rf"^v2/{NAME}/manifests/(?P<reference>[^/]+)$", manifests.ManifestView.as_view(),
            name="registry-manifest"),
    re_path(rf"^v2/{NAME}/blobs/uploads/$", blobs.UploadStartView.as_view(), name="registry-upload-start"),
    re_path(rf"^v2/{NAME}/blobs/uploads/(?P<upload_id>[^/]+)$", blobs.UploadView.as_view(),
            name="registry-upload"),
    re_path(rf"^v2/{NAME}/blobs/(?P<digest>[^/]+)$", blobs.BlobView.as_view(), name="registry-blob"),
    re_path(rf"^v2/{NAME}/referrers/(?P<digest>[^/]+)$", listing.ReferrersView.as_view(), name="registry-referrers"),
]

# Mounted after the Hub API in hub/urls.py: anything else under /v2/ answers in the registry's format.
fallback_urlpatterns = [re_path(r"^v2/.*$", listing.UnknownRegistryPath.as_view(), name="registry-unknown")]
