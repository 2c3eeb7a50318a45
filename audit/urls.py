"""The audit pages, under /audit/ (auditors and administrators only), and the jobs pages under /manage/jobs/."""

from django.urls import path

from audit.views import jobs, records

app_name = "audit"

urlpatterns = [
    path("", records.search, name="search"),
    path("<int:pk>/", records.record_detail, name="record"),
    path("export.csv", records.export_download, {"fmt": "csv"}, name="export_csv"),
    path("export.jsonl", records.export_download, {"fmt": "jsonl"}, name="export_jsonl"),
    path("exports/", records.exports, name="exports"),
    path("exports/<int:pk>/", records.export_status, name="export"),
    path("exports/<int:pk>/download", records.export_file, name="export_file"),
]

# Included by registryadmin.urls under /manage/jobs/ in the "jobs" namespace.
job_patterns = [
    path("", jobs.job_list, name="list"),
    path("<str:name>/run", jobs.job_run, name="run"),
]
