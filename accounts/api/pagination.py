"""Pages for the API's lists: ``?page=N&page_size=M`` (at most 500), with ``count``, ``next`` and ``previous``.

The audit log pages by keyset instead (``views.audit``): it is too large to count or OFFSET through.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        """A page that is not a number or past the end is a 400 on ``page`` (DRF says 404: no such page)."""
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound as error:
            raise exceptions.ValidationError({"page": [str(error.detail)]}) from None
