"""WSGI entry point: ``gunicorn registryadmin.wsgi:application``."""

import os

import django

from registryadmin.handler import SafeWSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registryadmin.settings")
django.setup(set_prefix=False)
application = SafeWSGIHandler()
