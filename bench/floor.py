"""The floor: a minimal WSGI token server that signs one fixed token, for comparison.

It does what any token server must (parse nothing, sign an ES256 JWT with x5c
and kid) and nothing else: no database, no permission check, no audit.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from accounts.registry.signing import Signer

_DIR = Path(os.environ["FLOOR_DIR"])
SIGNER = Signer.from_pem((_DIR / "key.pem").read_bytes(), (_DIR / "cert.pem").read_text())
SERVICE = os.environ.get("FLOOR_SERVICE", "registry")


def application(environ: dict, start_response) -> list[bytes]:
    now = int(time.time())
    scope = environ.get("QUERY_STRING", "")
    name = "bench/app"
    if "scope=repository%3A" in scope or "scope=repository:" in scope:
        name = scope.split("repository", 1)[1].lstrip("%3A:").split("%3A")[0].split(":")[0]
    claims = {
        "iss": "registryadmin",
        "sub": "bench",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 30,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [{"type": "repository", "name": name.replace("%2F", "/"), "actions": ["pull", "push"]}],
    }
    token = SIGNER.sign(claims)
    body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
