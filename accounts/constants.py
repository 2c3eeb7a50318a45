"""Names every layer shares: secret and login prefixes, the registry actions and the role order.

Each prefix constant says which prefix it is. The secret prefixes let secret scanners find a leaked
secret and let the token endpoint tell which kind of credential a password is without a lookup.
"""

from __future__ import annotations

# How a robot signs in: ``robot$<team>+<name>``, or ``robot$<name>`` for a global robot.
ROBOT_LOGIN_PREFIX = "robot$"
# Secrets, each shown once and stored only as a keyed hash (or, for notifications, encrypted).
ROBOT_SECRET_PREFIX = "rgb_"
PAT_PREFIX = "rga_"
REFRESH_TOKEN_PREFIX = "rgr_"
NOTIFICATION_SECRET_PREFIX = "rgn_"

# What a token may allow on a repository, in the order people read them.
ACTIONS = ("pull", "push", "delete")
# Repository roles, weakest first: read (pull), write (pull, push), admin (pull, push, delete).
ROLE_ORDER = ("read", "write", "admin")
