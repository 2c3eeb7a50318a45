from django.urls import path

from accounts import access_views

app_name = "access"

urlpatterns = [
    path("who", access_views.who, name="who"),
    path("why", access_views.why, name="why"),
    path("user/<str:username>", access_views.user_access, name="user"),
    path("robot/<str:login>", access_views.robot_access, name="robot"),
]
