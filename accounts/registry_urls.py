from django.urls import path

from accounts import registry_pages

app_name = "registries"

urlpatterns = [
    path("", registry_pages.registry_list, name="list"),
    path("new", registry_pages.registry_new, name="new"),
    path("<str:service>/", registry_pages.registry_detail, name="detail"),
    path("<str:service>/edit", registry_pages.registry_edit, name="edit"),
    path("<str:service>/prepare", registry_pages.registry_prepare, name="prepare"),
    path("<str:service>/bundle.pem", registry_pages.registry_bundle, name="bundle"),
]
