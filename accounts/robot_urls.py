"""Robot accounts, under /manage/robots/ (admins and auditors see them; admins make them)."""

from django.urls import path

from accounts import robot_views

app_name = "robots"

urlpatterns = [
    path("", robot_views.robot_list, name="list"),
    path("new", robot_views.robot_new, name="new"),
    path("<int:pk>/revoke", robot_views.robot_revoke, name="revoke"),
]
