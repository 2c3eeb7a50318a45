"""The team pages, under /teams/ (members, auditors and admins see a team; its leads change it; admins make it).

"new" comes before the ``<slug:name>/`` routes so it never reads as a team's name.
"""

from django.urls import path

from accounts import team_views

app_name = "teams"

urlpatterns = [
    path("", team_views.team_list, name="list"),
    path("new", team_views.team_new, name="new"),
    path("<slug:name>/", team_views.team_detail, name="detail"),
    path("<slug:name>/edit", team_views.team_edit, name="edit"),
    path("<slug:name>/delete", team_views.team_delete, name="delete"),
    path("<slug:name>/members/add", team_views.add_member, name="add_member"),
    path("<slug:name>/members/<str:username>/remove", team_views.remove_member, name="remove_member"),
    path("<slug:name>/grants/add", team_views.add_grant, name="add_grant"),
    path("<slug:name>/grants/<int:grant_id>/revoke", team_views.revoke_grant, name="revoke_grant"),
    path("<slug:name>/robots/add", team_views.add_robot, name="add_robot"),
    path("<slug:name>/robots/<int:pk>/revoke", team_views.revoke_robot, name="revoke_robot"),
]
