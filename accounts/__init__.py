"""Identities, teams, repositories, roles and credentials, and who may do what with them.

One Django app (``AUTH_USER_MODEL``, migrations) in four layers: ``access/`` (the pure engine),
``services/`` (every write, audited), ``registry/`` (what registries call), ``web/`` (the dashboard).
The README's Layout section says which way imports point.
"""
