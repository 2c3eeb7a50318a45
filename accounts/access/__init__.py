"""Who may do what: the pure permission engine and the loaders that feed it plain data.

- ``engine``: ``allowed_actions`` / ``decide`` / ``describe_access``, pure functions over plain data;
  the single source of truth for the token endpoint, the dashboard and the "who can access" matrix.
- ``patterns`` and ``scopes``: repository names, glob patterns and the token ``scope`` grammar (pure).
- ``subjects``: the only place the engine's input is read from the database.
- ``matrix`` ("who can access X") and ``explain`` ("why denied") ask the engine and shape its answers.

Imports point down only: models, constants, ``patterns``. Nothing here writes.
"""
