from django.urls import path

from accounts import setup_views

app_name = "setup"

urlpatterns = [
    path("", setup_views.setup, name="index"),
]
