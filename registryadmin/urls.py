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
    path("setup/", include("accounts.setup_urls")),
    path("me/tokens/", include("accounts.pat_urls")),
    path("manage/users/", include("accounts.user_urls")),
    path("manage/registries/", include("accounts.registry_urls")),
    path("manage/repositories/", include("accounts.repository_urls")),
    path("manage/grants/", include("accounts.grant_urls")),
    path("manage/robots/", include("accounts.robot_urls")),
    path("manage/keys/", include("accounts.key_urls")),
    path("manage/jobs/", include("audit.job_urls")),
    path("", include("accounts.urls")),
]
