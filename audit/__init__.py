"""Append-only records of every access attempt, registry event and admin change, and their pages.

``audit`` imports from ``accounts`` only its models, ``accounts.access`` and ``accounts.constants``,
at module top; everyone may import ``audit``.
"""
