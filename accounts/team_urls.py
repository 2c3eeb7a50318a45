"""The team pages, under /teams/ (members, auditors and admins see a team; its leads change it)."""

from django.urls import path

from accounts import team_views

app_name = "teams"

urlpatterns = [
    path("", team_views.team_list, name="list"),
    path("<slug:name>/", team_views.team_detail, name="detail"),
    path("<slug:name>/members/add", team_views.add_member, name="add_member"),
    path("<slug:name>/members/<str:username>/remove", team_views.remove_member, name="remove_member"),
    path("<slug:name>/grants/add", team_views.add_grant, name="add_grant"),
    path("<slug:name>/grants/<int:grant_id>/revoke", team_views.revoke_grant, name="revoke_grant"),
]
