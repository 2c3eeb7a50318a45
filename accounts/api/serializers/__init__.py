"""API serializers, one module a family of views (same names as ``views``)."""
