"""Tags and manifests in the admin, read-only: pushed and deleted through the registry API only."""

from django.contrib import admin

from lib.admin import ReadOnlyAdmin
from registry.models import Manifest, Tag


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["name", "repository", "pushed_at", "pushed_by", "last_pulled_at"]
    search_fields = ["name", "repository__name", "repository__namespace__name"]
    list_select_related = ["repository__namespace", "pushed_by", "manifest"]
    exclude = ["manifest"]
    readonly_fields = ["digest"]
    show_full_result_count = False

    @admin.display(description="Digest")
    def digest(self, tag: Tag) -> str:
        return tag.manifest.digest


@admin.register(Manifest)
class ManifestAdmin(ReadOnlyAdmin):
    list_display = ["digest", "repository", "media_type", "total_size", "created_at"]
    search_fields = ["=digest", "repository__name", "repository__namespace__name"]
    list_select_related = ["repository__namespace"]
    exclude = ["content"]  # the exact bytes: the registry API serves them
    show_full_result_count = False
