"""The Dockerfile cannot be built here (no Docker engine); parse it with Docker's parser and check its shape."""

from __future__ import annotations

import dockerfile

from tests.conftest import REPO_ROOT


def commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(REPO_ROOT / "Dockerfile")))


def test_it_is_multi_stage_and_copies_only_built_wheels_from_the_first_stage() -> None:
    stages = [c for c in commands() if c.cmd == "FROM"]
    assert len(stages) == 2
    copies = [c for c in commands() if c.cmd == "COPY" and any(f.startswith("--from=") for f in c.flags)]
    assert copies and copies[0].value[0] == "/wheels"


def test_it_runs_as_a_non_root_user_with_data_in_a_volume() -> None:
    users = [c.value[0] for c in commands() if c.cmd == "USER"]
    assert users == ["registryadmin"]
    assert ("/data",) in [c.value for c in commands() if c.cmd == "VOLUME"]
    env = dict(zip(*[iter(next(c.value for c in commands() if c.cmd == "ENV"))] * 2, strict=False))
    assert env["DATA_DIR"] == "/data"


def test_it_starts_the_documented_way_and_checks_health() -> None:
    cmd = " ".join(next(c.value for c in commands() if c.cmd == "CMD"))
    assert "manage.py migrate --noinput" in cmd
    assert "gunicorn registryadmin.wsgi:application" in cmd
    assert any("/healthz" in " ".join(c.value) for c in commands() if c.cmd == "HEALTHCHECK")
