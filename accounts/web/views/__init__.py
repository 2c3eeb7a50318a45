"""Dashboard views, one module a page family: ``home``, ``users``, ``teams``, ``grants``, ``repositories``,
``registries``, ``robots``, ``tokens`` (personal access tokens), ``keys``, ``backups``, ``access``, ``setup``."""
