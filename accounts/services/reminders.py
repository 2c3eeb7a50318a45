"""Expiry reminders: a mail before a grant, robot or token expires (being built)."""
