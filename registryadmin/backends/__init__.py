"""Database backends: Django's own, with what the token endpoint's hot path needs (see each module)."""
