"""Pages for the API's lists: ``?page=N&page_size=M`` (at most 500), with ``count``, ``next`` and ``previous``.

The audit log pages by keyset instead (``views.audit``): it is too large to count or OFFSET through.
"""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
