"""Access review pages (being built): placeholders so the URL module loads."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def _missing(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise Http404("access reviews are being built")


review_list = review_start = review_detail = review_export = item_certify = item_revoke = _missing
