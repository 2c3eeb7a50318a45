"""The dashboard: one ``urls`` module, ``views/`` (a module a page family) and ``forms/``.

Views parse, authorize (``registryadmin.guards``, ``accounts.authz``), call a service and render.
Imports point to ``accounts.services`` (writes) and ``accounts.access`` (answers); never the other way.
"""
