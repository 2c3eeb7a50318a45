"""The site's URLs: what registries call, the audit pages, the dashboard (each package keeps its own list)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from audit.urls import job_patterns
from registryadmin.views import healthz, metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("accounts.registry.urls")),
    # The admin site's own form would skip the failure limits: it signs in through ours.
    path("admin/login/", RedirectView.as_view(pattern_name="accounts:login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/", include("accounts.api.urls")),
    path("audit/", include("audit.urls")),
    path("manage/jobs/", include((job_patterns, "jobs"))),
    path("", include("accounts.web.urls")),
]

# Under /api/ these answer in the API's JSON error shape; elsewhere they are Django's pages.
handler400 = "accounts.api.errors.bad_request"
handler403 = "accounts.api.errors.permission_denied"
handler404 = "accounts.api.errors.page_not_found"
handler500 = "accounts.api.errors.server_error"
