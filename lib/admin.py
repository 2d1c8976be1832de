"""Django admin helpers shared by the apps."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, never touch: for rows whose changes must go through the app's services (deleting a repository
    releases its blobs and writes the audit log; manifests and tags are content-addressed and verified on
    push), so the admin can find and show them but not add, change or delete them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
