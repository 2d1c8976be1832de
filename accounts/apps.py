from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"

    def ready(self) -> None:
        from accounts import signals, sso  # noqa: F401 - connect the receivers (sso: single sign-on's audit)
