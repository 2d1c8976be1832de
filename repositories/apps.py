from django.apps import AppConfig


class RepositoriesConfig(AppConfig):
    name = "repositories"

    def ready(self) -> None:
        from accounts.events import organization_deleting, user_deleting
        from repositories import receivers

        user_deleting.connect(receivers.on_user_deleting, dispatch_uid="repositories.user_deleting")
        organization_deleting.connect(receivers.on_organization_deleting,
                                      dispatch_uid="repositories.organization_deleting")
