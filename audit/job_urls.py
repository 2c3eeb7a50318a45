from django.urls import path

from audit import job_views

app_name = "jobs"

urlpatterns = [
    path("", job_views.job_list, name="list"),
    path("<str:name>/run", job_views.job_run, name="run"),
]
