from django.contrib import admin
from django.urls import include, path

from accounts.registry_views import registry_events
from accounts.token_views import token
from registryadmin.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("auth/token", token, name="token"),
    path("registry/<str:service>/events", registry_events, name="registry_events"),
    path("admin/", admin.site.urls),
    path("audit/", include("audit.urls")),
    path("teams/", include("accounts.team_urls")),
    path("access/", include("accounts.access_urls")),
    path("", include("accounts.urls")),
]
