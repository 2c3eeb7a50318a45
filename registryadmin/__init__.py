"""registryadmin: who may pull, push and delete on private Docker registries."""

from registryadmin.celery import app as celery_app

__all__ = ("celery_app",)
