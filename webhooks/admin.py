from django.contrib import admin

from webhooks.models import Delivery, Webhook


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "repository", "url", "active", "consecutive_failures", "created_at"]
    list_filter = ["active"]
    search_fields = ["name", "url", "repository__name", "repository__namespace__name"]
    raw_id_fields = ["repository", "created_by"]
    exclude = ["secret", "headers"]  # stored encrypted; they can hold credentials
    readonly_fields = ["consecutive_failures", "disabled_reason", "disabled_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "repository_name", "state", "attempts", "response_status", "created_at"]
    list_filter = ["state", "event"]
    search_fields = ["id", "repository_name", "url"]
    raw_id_fields = ["webhook", "repository", "redelivery_of"]
    exclude = ["request_headers"]  # the webhook's custom headers, which can hold credentials
    readonly_fields = [field.name for field in Delivery._meta.fields if field.name != "request_headers"]
