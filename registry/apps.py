from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from registry import manifest_cache, receivers
        from registry.mirror import checks  # noqa: F401 - registers the mirror prefix check
        from repositories.signals import repositories_deleting

        manifest_cache.connect_signals()
        repositories_deleting.connect(receivers.on_repositories_deleting, dispatch_uid="registry.repositories_deleting")
