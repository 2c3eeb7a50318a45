from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import signals  # noqa: F401  (connects the sign-in receivers)
        from accounts.access.version import install_after_migrate
        from accounts.api import schema  # noqa: F401  (registers the API's authentication schemes)
        from accounts.bootstrap import bootstrap_after_migrate

        post_migrate.connect(install_after_migrate, sender=self)  # before bootstrap writes rows
        post_migrate.connect(bootstrap_after_migrate, sender=self)
