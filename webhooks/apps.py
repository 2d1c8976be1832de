from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from registry.signals import image_pushed, tag_deleted
        from repositories.signals import repository_deleted
        from webhooks import receivers

        image_pushed.connect(receivers.on_image_pushed, dispatch_uid="webhooks.image_pushed")
        tag_deleted.connect(receivers.on_tag_deleted, dispatch_uid="webhooks.tag_deleted")
        repository_deleted.connect(receivers.on_repository_deleted, dispatch_uid="webhooks.repository_deleted")
