"""Rendering the registry's configuration fragment and writing the files it names. Pure + edges."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings


def default_output_dir(service: str) -> Path:
    return Path(settings.DATA_DIR) / "registry" / service


def token_fragment(service: str, bundle_path: Path, secret: str) -> dict[str, Any]:
    """``auth`` + ``notifications`` for a registry that uses us as its token server."""
    return {
        "auth": {
            "token": {
                "realm": f"{settings.PUBLIC_URL}/auth/token",
                "service": service,
                "issuer": settings.TOKEN_ISSUER,
                "rootcertbundle": str(bundle_path.resolve()),
            }
        },
        "notifications": notifications(service, secret),
    }


def notifications(service: str, secret: str) -> dict[str, Any]:
    return {
        "endpoints": [
            {
                "name": "registryadmin",
                "url": f"{settings.PUBLIC_URL}/registry/{service}/events",
                "headers": {"Authorization": [f"Bearer {secret}"]},
                "timeout": "5s",
                "threshold": 5,
                "backoff": "10s",
            }
        ]
    }


def render(fragment: dict[str, Any]) -> str:
    return yaml.safe_dump(fragment, sort_keys=False, default_flow_style=False)


def write_atomic(path: Path, content: str, mode: int) -> None:
    """Temp file in the same directory, fsync, rename: readers never see a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
