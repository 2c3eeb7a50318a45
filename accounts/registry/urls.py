"""What registries and their clients call: the token endpoint and the notification intake (no namespace)."""

from django.urls import path

from accounts.registry import views

urlpatterns = [
    path("auth/token", views.token, name="token"),
    path("registry/<str:service>/events", views.registry_events, name="registry_events"),
]
