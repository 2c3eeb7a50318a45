"""One module per doctor check, each ``check(target, state) -> Check``."""
