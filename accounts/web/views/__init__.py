"""Dashboard views, one module a page family: ``home``, ``users``, ``teams``, ``grants``, ``repositories``,
``registries``, ``robots``, ``tokens`` (personal access tokens), ``keys``, ``access``, ``setup``."""
