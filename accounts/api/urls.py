"""Everything under /api/ (namespace ``api``): one module of views a family, the schema and its docs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.api.views import access, audit, me, operations, people, rights

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    *me.urlpatterns,
    *people.urlpatterns,
    *rights.urlpatterns,
    *operations.urlpatterns,
    *audit.urlpatterns,
    *access.urlpatterns,
]
