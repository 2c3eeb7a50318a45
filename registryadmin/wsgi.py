"""WSGI entry point: ``gunicorn registryadmin.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registryadmin.settings")
application = get_wsgi_application()
