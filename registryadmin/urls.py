"""The site's URLs: what registries call, the audit pages, the dashboard (each package keeps its own list)."""

from django.contrib import admin
from django.urls import include, path

from audit.urls import job_patterns
from registryadmin.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("", include("accounts.registry.urls")),
    path("admin/", admin.site.urls),
    path("audit/", include("audit.urls")),
    path("manage/jobs/", include((job_patterns, "jobs"))),
    path("", include("accounts.web.urls")),
]
