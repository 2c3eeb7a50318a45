"""``target_for``: the doctor's target, built the same way for ``manage.py doctor``, the page and the daily job."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from accounts import services
from accounts.registry.doctor.targets import NoTarget, target_for
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def test_it_probes_the_registry_url_or_the_one_given() -> None:
    registry = services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)
    direct = target_for(registry)
    assert (direct.url, direct.direct_url, direct.through_proxy) == ("http://127.0.0.1:5000",) * 2 + (False,)
    proxied = target_for(registry, "https://proxy.example.org/", origin="https://ui.example.org")
    assert (proxied.url, proxied.direct_url, proxied.through_proxy) == (
        "https://proxy.example.org",
        "http://127.0.0.1:5000",
        True,
    )
    assert proxied.origin == "https://ui.example.org"


def test_it_refuses_without_a_url_anywhere_or_with_half_a_question() -> None:
    registry = services.create_registry("registry", context=SYSTEM)
    with pytest.raises(NoTarget, match="registry registry has no URL"):
        target_for(registry)
    assert target_for(registry, "http://127.0.0.1:5001").direct_url == "http://127.0.0.1:5001"
    with pytest.raises(NoTarget, match="go together"):
        target_for(registry, "http://127.0.0.1:5001", user="bob")
    with pytest.raises(NoTarget, match="action"):
        target_for(registry, "http://127.0.0.1:5001", user="bob", repository="web/app", action="fly")


def test_the_command_exits_2_when_the_registry_has_no_url() -> None:
    services.create_registry("registry", context=SYSTEM)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("doctor", stderr=err)
    assert exited.value.code == 2
    assert "registry registry has no URL" in err.getvalue()
