from django.urls import path

from accounts import key_views

app_name = "keys"

urlpatterns = [
    path("", key_views.key_list, name="list"),
    path("rotate", key_views.key_rotate, name="rotate"),
]
