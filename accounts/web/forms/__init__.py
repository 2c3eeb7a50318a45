"""Dashboard forms: they parse and validate input; the services decide what is allowed.

``common`` holds what every form shares ("until" days, service errors on fields); the rest are
named after the pages that use them.
"""
