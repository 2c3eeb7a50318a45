"""The repositories pages, under /manage/repositories/ (overseers read; admins change)."""

from django.urls import path

from accounts import repository_views

app_name = "repositories"

urlpatterns = [
    path("", repository_views.repository_list, name="list"),
    path("new", repository_views.repository_new, name="new"),
    path("<int:pk>/public", repository_views.repository_public, name="public"),
    path("<int:pk>/delete", repository_views.repository_delete, name="delete"),
]
