"""(filled in by the API work of issue 19)"""

from __future__ import annotations

urlpatterns: list = []
