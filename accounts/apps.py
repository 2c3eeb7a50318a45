from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import signals  # noqa: F401  (connects the sign-in receivers)
        from accounts.bootstrap import bootstrap_after_migrate

        post_migrate.connect(bootstrap_after_migrate, sender=self)
