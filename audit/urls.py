"""The audit pages, under /audit/ (auditors and administrators only), and the jobs pages under /manage/jobs/."""

from django.urls import path

from audit import job_views, views

app_name = "audit"

urlpatterns = [
    path("", views.search, name="search"),
    path("<int:pk>/", views.record_detail, name="record"),
    path("export.csv", views.export_download, {"fmt": "csv"}, name="export_csv"),
    path("export.jsonl", views.export_download, {"fmt": "jsonl"}, name="export_jsonl"),
    path("exports/", views.exports, name="exports"),
    path("exports/<int:pk>/", views.export_status, name="export"),
    path("exports/<int:pk>/download", views.export_file, name="export_file"),
]

# Included by registryadmin.urls under /manage/jobs/ in the "jobs" namespace.
job_patterns = [
    path("", job_views.job_list, name="list"),
    path("<str:name>/run", job_views.job_run, name="run"),
]
