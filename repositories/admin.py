"""Repositories in the admin, read-only: pages and services (repositories.services) make every change."""

from django.contrib import admin

from lib.admin import ReadOnlyAdmin
from repositories.models import Repository


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "is_private", "pull_count", "star_count", "last_pushed_at", "created_at"]
    list_filter = ["is_private", "is_automated", "namespace__kind"]
    search_fields = ["name", "namespace__name", "description"]
    list_select_related = ["namespace"]
    show_full_result_count = False  # no COUNT(*) of the whole table on every page
