"""The user pages, under /manage/users/ (admins and auditors read; admins change)."""

from django.urls import path

from accounts import user_views

app_name = "users"

urlpatterns = [
    path("", user_views.user_list, name="list"),
    path("new", user_views.user_new, name="new"),
    path("<str:username>/", user_views.user_detail, name="detail"),
    path("<str:username>/edit", user_views.user_edit, name="edit"),
    path("<str:username>/password", user_views.user_password, name="password"),
    path("<str:username>/active", user_views.user_active, name="active"),
    path("<str:username>/refresh-tokens/revoke", user_views.revoke_refresh, name="revoke_refresh"),
]
