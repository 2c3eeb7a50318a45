"""What registries and their clients call, and the files and keys registries read.

- ``views`` and ``urls``: the token endpoint (``/auth/token``) and the notification intake.
- ``tokens`` (claims and the token response), ``identity`` (who is asking), ``passwords``,
  ``refresh``, ``endpoints``: the token endpoint's reads, kept fast (it is the hot path).
- ``signing`` and ``secrets``: pure crypto (ES256 keys, certificates, the libtrust kid; keyed secret hashes).
- ``keys``: the published bundle, the rotation preflight and the per-process signer.
- ``htpasswd`` and ``config``: the htpasswd file and the ``config.yml`` fragment a registry reads.

Imports point to ``accounts.services`` (every write, e.g. making keys) and ``accounts.access``.
Services use only the format modules here (``signing``, ``secrets``, ``htpasswd``), never the views.
"""
