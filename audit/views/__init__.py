"""The audit pages: ``records`` (search, one record, exports) under /audit/, ``jobs`` under /manage/jobs/."""
