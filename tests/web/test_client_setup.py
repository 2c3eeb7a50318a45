"""Client setup from what the doctor found: the steps per client, the page and ``manage.py client_setup`` agreeing.

The doctor's findings here are the tls check's own verdicts (``checks.tls`` judging a certificate made
with ``cryptography``), kept through ``services.doctor.record_run`` as a real run would be.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command
from django.test import Client

from accounts import services
from accounts.models import DoctorRun, Registry, User
from accounts.registry import client_setup as cs
from accounts.registry.doctor.checks import tls
from accounts.registry.doctor.model import Check, Report
from tests.conftest import SYSTEM
from tests.harness.tls import issue

pytestmark = pytest.mark.django_db

HOST = "registry.example.org:5000"
URL = f"https://{HOST}"
LAB = "10.0.0.5:5000"


def record(registry: Registry, check: Check, url: str | None = None) -> DoctorRun:
    report = Report(registry.service, url or registry.url, [check], seconds=1.0)
    return services.doctor.record_run(registry, report, context=SYSTEM, scheduled=False)


def certificate(tmp_path: Path) -> x509.Certificate:
    _, server, _ = issue(tmp_path, host="registry.example.org")
    return x509.load_pem_x509_certificate(server.read_bytes())


def unknown_ca(tmp_path: Path) -> Check:
    """What the doctor says of a certificate from a CA this host does not know, the server sending no intermediate."""
    verdict = tls.Verdict(tls.NO_LOCAL_ISSUER, "unable to get local issuer certificate")
    return tls._judge("registry.example.org", 5000, [certificate(tmp_path)], verdict)


def expired(tmp_path: Path) -> Check:
    return tls._judge("registry.example.org", 5000, [certificate(tmp_path)], tls.Verdict(tls.EXPIRED, "expired"))


def healthy() -> Check:
    return Check("tls", "ok", "a trusted certificate for registry.example.org, valid for 80 more days")


def steps_for(registry: Registry, client: str, login: str = "carol") -> list[cs.Step]:
    facts = cs.client_setup(registry)
    return cs.steps(facts, client, cs.finding(facts, services.doctor.latest_run(registry)), login=login)


def all_lines(registry: Registry, client: str) -> list[str]:
    return [line for step in steps_for(registry, client) for line in step.lines]


def titles(registry: Registry, client: str) -> list[str]:
    return [step.title for step in steps_for(registry, client)]


@pytest.fixture
def secure(db: None) -> Registry:
    return services.create_registry("registry", url=URL, context=SYSTEM)


@pytest.fixture
def lab(db: None) -> Registry:
    return services.create_registry("lab", url=f"http://{LAB}", context=SYSTEM)


def test_the_doctors_unknown_ca_verdict_is_read_as_a_private_ca(secure, tmp_path) -> None:
    run = record(secure, unknown_ca(tmp_path))
    found = cs.finding(cs.client_setup(secure), run)
    assert found.transport == cs.PRIVATE_CA
    assert found.source == f"the doctor found a certificate from an unknown CA on {run.started_at:%Y-%m-%d %H:%M} UTC"
    assert "not trusted here" in found.detail


def test_a_self_signed_certificate_is_named_so(secure, tmp_path) -> None:
    check = tls._judge("registry.example.org", 5000, [certificate(tmp_path)], tls.Verdict(tls.SELF_SIGNED, "x"))
    found = cs.finding(cs.client_setup(secure), record(secure, check))
    assert found.transport == cs.PRIVATE_CA and "found a self-signed certificate on" in found.source


def test_an_unknown_ca_gives_each_client_its_ca_file(secure, tmp_path) -> None:
    record(secure, unknown_ca(tmp_path))
    docker = steps_for(secure, "docker")
    assert docker[0].title == "Trust the registry's CA" and not docker[0].optional
    assert docker[0].source.startswith("the doctor found a certificate from an unknown CA on ")
    assert f"sudo cp ca.crt /etc/docker/certs.d/{HOST}/ca.crt" in docker[0].lines
    assert f"sudo cp ca.crt /etc/containers/certs.d/{HOST}/ca.crt" in all_lines(secure, "podman")
    skopeo = steps_for(secure, "skopeo")
    assert f"sudo cp ca.crt /etc/containers/certs.d/{HOST}/ca.crt" in skopeo[0].lines
    assert any("--cert-dir" in note for note in skopeo[0].notes)
    containerd = all_lines(secure, "containerd")
    assert f'  ca = "/etc/containerd/certs.d/{HOST}/ca.crt"' in containerd
    assert f'[host."https://{HOST}"]' in containerd
    assert f"ctr images pull --hosts-dir /etc/containerd/certs.d --user carol {HOST}/web/app:1.0" in containerd
    kubernetes = steps_for(secure, "kubernetes")
    assert kubernetes[0].title == "Trust the registry's CA in containerd"
    assert any("every node's containerd" in note for note in kubernetes[0].notes)
    assert f'  ca = "/etc/containerd/certs.d/{HOST}/ca.crt"' in kubernetes[0].lines
    for client in cs.CLIENTS:
        assert not [line for line in all_lines(secure, client) if "insecure" in line or "plain-http" in line]


def test_plain_http_tells_each_client_to_allow_it(lab) -> None:
    docker = steps_for(lab, "docker")
    assert docker[0].title == "Allow plain HTTP" and docker[0].source == f"the registry's URL is http://{LAB}"
    assert docker[0].blocks[0].into == "/etc/docker/daemon.json"
    assert docker[0].lines == [f'{{"insecure-registries": ["{LAB}"]}}', "sudo systemctl restart docker"]
    assert f"podman pull --tls-verify=false {LAB}/web/app:1.0" in all_lines(lab, "podman")
    skopeo = all_lines(lab, "skopeo")
    assert f"skopeo inspect --tls-verify=false docker://{LAB}/web/app:1.0" in skopeo
    assert f"skopeo copy --src-tls-verify=false docker://{LAB}/web/app:1.0 oci-archive:app.tar" in skopeo
    containerd = all_lines(lab, "containerd")
    assert f"ctr images pull --plain-http --user carol {LAB}/web/app:1.0" in containerd
    assert f'[host."http://{LAB}"]' in containerd and not [line for line in containerd if "ca =" in line]
    assert titles(lab, "kubernetes")[0] == "Allow plain HTTP in containerd"
    for client in cs.CLIENTS:
        assert not [line for line in all_lines(lab, client) if "certs.d" in line and "ca.crt" in line]


def test_the_doctors_plain_http_warning_is_named_with_its_date(lab) -> None:
    run = record(lab, tls._plain_http("10.0.0.5", 5000))
    docker = steps_for(lab, "docker")
    assert docker[0].source == f"the doctor found plain HTTP at {LAB} on {run.started_at:%Y-%m-%d %H:%M} UTC"
    assert any(note.startswith("The doctor said: plain HTTP") for note in docker[0].notes)


def test_healthy_https_needs_no_extra_step(secure) -> None:
    record(secure, healthy())
    assert titles(secure, "docker") == ["Log in", "Log in as a robot (CI, servers)", "Pull and push"]
    assert titles(secure, "containerd") == ["Pull with ctr"]
    assert f"ctr images pull --user carol {HOST}/web/app:1.0" in all_lines(secure, "containerd")
    for client in cs.CLIENTS:
        lines = all_lines(secure, client)
        assert not [line for line in lines if "certs.d" in line or "insecure" in line or "tls-verify" in line]


def test_without_a_doctor_run_https_gets_the_private_ca_steps_as_ifs(secure) -> None:
    docker = steps_for(secure, "docker")
    assert docker[0].optional and docker[0].title.startswith("If its certificate comes from a private CA")
    assert docker[0].source == ""


def test_a_run_on_another_address_is_not_applied(secure) -> None:
    """A plain-HTTP run from before the registry moved to https must not make anyone turn verification off."""
    record(secure, tls._plain_http("registry.example.org", 5000), url=f"http://{HOST}")
    assert cs.finding(cs.client_setup(secure), services.doctor.latest_run(secure)).transport == cs.UNKNOWN
    assert not [line for line in all_lines(secure, "docker") if "insecure" in line]


def test_only_the_latest_run_counts(secure, tmp_path) -> None:
    old = record(secure, unknown_ca(tmp_path))
    DoctorRun.objects.filter(pk=old.pk).update(started_at=datetime.now(UTC) - timedelta(days=1))
    record(secure, healthy())
    assert "Trust the registry's CA" not in titles(secure, "docker")


def test_a_certificate_clients_refuse_for_other_reasons_is_named_not_worked_around(secure, tmp_path) -> None:
    record(secure, expired(tmp_path))
    for client in cs.CLIENTS:
        step = steps_for(secure, client)[0]
        assert step.title == "The registry's certificate is refused" and not step.blocks
        assert step.source.startswith("the doctor found a certificate clients refuse on ")
        assert any("the certificate expired on" in note for note in step.notes)


def test_robot_names_stay_single_quoted(secure) -> None:
    assert f"echo \"$ROBOT_SECRET\" | docker login -u 'robot$web+ci' --password-stdin {HOST}" in all_lines(
        secure, "docker"
    )
    assert "  --docker-username='robot$web+ci' \\" in all_lines(secure, "kubernetes")
    assert f"podman login -u 'robot$web+ci' {HOST}" in all_lines_as(secure, "podman", "robot$web+ci")


def all_lines_as(registry: Registry, client: str, login: str) -> list[str]:
    return [line for step in steps_for(registry, client, login) for line in step.lines]


def test_an_unknown_client_is_refused(secure) -> None:
    with pytest.raises(ValueError, match="unknown client 'nerdctl'"):
        steps_for(secure, "nerdctl")


# The page and the command show the same steps.


def command(*args: str) -> str:
    out = StringIO()
    call_command("client_setup", *args, stdout=out)
    return out.getvalue()


def command_steps(text: str) -> tuple[list[str], list[str]]:
    """(titles, lines to paste) of one client's text: numbered titles, ``$`` commands, file lines under ``in``."""
    step_titles = re.findall(r"^\d+\. (.*)$", text, re.M)
    lines = [line[5:] for line in text.splitlines() if line.startswith(("   $ ", "     ")) and line.strip()]
    return step_titles, lines


def page_steps(body: str, service: str, client: str) -> tuple[list[str], list[str]]:
    section = body.split(f'id="registry-{service}-{client}"', 1)[1].split("</ol>", 1)[0]
    step_titles = [html.unescape(t) for t in re.findall(r"<h4>(.*?)</h4>", section)]
    blocks = [html.unescape(b) for b in re.findall(r'<pre class="config">(.*?)</pre>', section, re.S)]
    return step_titles, [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("client", cs.CLIENTS)
@pytest.mark.parametrize("case", ["unknown_ca", "plain_http", "healthy", "no_run"])
def test_the_page_shows_the_same_steps_as_the_command(carol: User, tmp_path, client: str, case: str) -> None:
    url = f"http://{LAB}" if case == "plain_http" else URL
    registry = services.create_registry("registry", url=url, context=SYSTEM)
    if case == "unknown_ca":
        record(registry, unknown_ca(tmp_path))
    elif case == "healthy":
        record(registry, healthy())
    browser = Client()
    browser.force_login(carol)
    body = browser.get("/setup/").content.decode()
    expected = page_steps(body, "registry", client)
    assert expected[1], "the page shows no lines"
    assert command_steps(command("--client", client, "--user", "carol")) == expected


def test_the_page_names_what_the_doctor_found(carol: User, secure, tmp_path) -> None:
    run = record(secure, unknown_ca(tmp_path))
    browser = Client()
    browser.force_login(carol)
    body = html.unescape(browser.get("/setup/").content.decode())
    assert f"The doctor found a certificate from an unknown CA on {run.started_at:%Y-%m-%d %H:%M} UTC." in body
    assert f"sudo cp ca.crt /etc/docker/certs.d/{HOST}/ca.crt" in body


def test_the_page_says_a_healthy_registry_needs_nothing_more(carol: User, secure) -> None:
    record(secure, healthy())
    browser = Client()
    browser.force_login(carol)
    body = browser.get("/setup/").content.decode()
    assert "The doctor found a trusted certificate on" in body
    assert "certs.d" not in body and "insecure-registries" not in body


# The command on its own.


def test_the_command_prints_every_client_for_the_only_registry(secure, tmp_path) -> None:
    run = record(secure, unknown_ca(tmp_path))
    out = command()
    when = f"{run.started_at:%Y-%m-%d %H:%M} UTC"
    assert out.startswith(f"The doctor found a certificate from an unknown CA on {when}.\n")
    for name in cs.CLIENT_NAMES.values():
        assert f"{name} for registry at {HOST}" in out
    assert f"   (the doctor found a certificate from an unknown CA on {when})" in out
    assert f"   $ sudo cp ca.crt /etc/docker/certs.d/{HOST}/ca.crt" in out
    assert f"   $ docker login -u {cs.PLACEHOLDER_LOGIN} {HOST}" in out
    assert f"   in /etc/containerd/certs.d/{HOST}/hosts.toml:" in out
    # a continued command pastes as one: no prompt on its continuation lines
    assert f"   $ kubectl create secret docker-registry regcred \\\n       --docker-server={HOST} \\\n" in out


def test_the_command_quotes_the_user_it_is_given(lab) -> None:
    out = command("--client", "docker", "--user", "robot$web+ci")
    assert f"   $ docker login -u 'robot$web+ci' {LAB}" in out
    assert "Podman" not in out and "insecure-registries" in out


def test_the_command_needs_a_registry(db: None) -> None:
    with pytest.raises(CommandError, match="no registry is configured"):
        command()


def test_the_command_asks_which_registry_when_there_are_several(secure, lab) -> None:
    with pytest.raises(CommandError, match=r"several registries exist \(lab, registry\); pick one with --registry"):
        command()
    assert "Podman for lab at" in command("--registry", "lab")


def test_the_command_lists_the_known_registries_for_an_unknown_one(secure, lab) -> None:
    with pytest.raises(CommandError, match=r"no registry 'nope'; known: lab, registry"):
        command("--registry", "nope")


def test_the_command_refuses_an_unknown_client(secure) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'nerdctl'"):
        command("--client", "nerdctl")
