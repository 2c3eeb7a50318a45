"""The grants pages, under /manage/grants/ (overseers read; admins change)."""

from django.urls import path

from accounts import grant_views

app_name = "grants"

urlpatterns = [
    path("", grant_views.grant_list, name="list"),
    path("new", grant_views.grant_new, name="new"),
    path("<int:pk>/edit", grant_views.grant_edit, name="edit"),
    path("<int:pk>/revoke", grant_views.grant_revoke, name="revoke"),
]
