"""The JSON API under /api/ (Django REST framework), for scripts, CI jobs and Terraform-style tools.

A layer beside ``web``: it parses and authorizes like the pages, then calls the same services and
asks the same engine; it never imports ``accounts.web`` (nor ``web`` it). ``authentication`` (personal
access tokens and the session), ``permissions`` (who may what, and what a token is limited to),
``errors`` (one JSON shape for every error), ``pagination``, ``schema``, ``urls``; ``views/`` and
``serializers/`` hold one module a family of resources.
"""
