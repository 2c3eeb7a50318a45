"""Everything under /api/ (namespace ``api``): one module of views a family, the schema and its docs."""

from __future__ import annotations

from django.urls import path

from accounts.api.views import access, audit, me, operations, people, rights
from accounts.api.views.docs import DocsView, SchemaView

app_name = "api"

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
    *me.urlpatterns,
    *people.urlpatterns,
    *rights.urlpatterns,
    *operations.urlpatterns,
    *audit.urlpatterns,
    *access.urlpatterns,
]
