"""Builds in the admin, read-only: started, cancelled and retried from the repository's Builds tab."""

from django.contrib import admin

from builds.models import Build
from lib.admin import ReadOnlyAdmin


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    list_display = ["id", "repository", "state", "trigger", "ref", "tag", "created", "finished"]
    list_filter = ["state", "trigger"]
    search_fields = ["=id", "repository__name", "repository__namespace__name", "commit"]
    list_select_related = ["repository__namespace"]
    exclude = ["worker_token_hash", "push_token"]  # the worker's credentials
    show_full_result_count = False
