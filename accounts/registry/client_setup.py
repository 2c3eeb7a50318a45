"""What each client needs to use one registry: the steps, as data, for the setup page and ``manage.py client_setup``.

Pure: ``client_setup(registry)`` reads the registry's URL and mode, ``finding(setup, run)`` reads what the
registry's latest doctor run (``DoctorRun``) found about TLS, and ``steps(setup, client, found, login=...)``
turns both into ``Step``s (a title, notes, blocks of commands or file contents) for one client. The page
and the command render the same steps, so they cannot disagree. A doctor finding is used only when the
run probed the address clients use (the registry's URL as it is now): a plain-HTTP run from before the
registry moved to https must not make anyone turn verification off.

The lines to paste quote names for a POSIX shell (``shlex.quote``): a robot's ``robot$team+name`` must
reach the client unexpanded. ``ClientSetup`` and ``client_setup`` lived in ``accounts/web/views/setup.py``
before; the management command uses them too, so they sit with what clients read.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from accounts.models import AuthMode, DoctorRun, Registry

PLACEHOLDER_HOST = "REGISTRY_HOST"
PLACEHOLDER_LOGIN = "YOUR_NAME"
EXAMPLE_ROBOT = "robot$web+ci"
EXAMPLE_IMAGE = "web/app:1.0"
CLIENTS = ("docker", "podman", "skopeo", "containerd", "kubernetes")
CLIENT_NAMES = {
    "docker": "Docker",
    "podman": "Podman",
    "skopeo": "skopeo",
    "containerd": "containerd (ctr)",
    "kubernetes": "Kubernetes",
}
CONTAINERD_CERTS_D = "/etc/containerd/certs.d"

# What the doctor's tls check tells about the way to the registry.
UNKNOWN = "unknown"  # https, and no doctor run on this address says more
TRUSTED = "trusted"  # a certificate clients trust already: nothing to add
PRIVATE_CA = "private_ca"  # self-signed or from a CA clients do not know: give them the CA
PLAIN_HTTP = "plain_http"  # clients must be told the registry is insecure
BROKEN = "broken"  # expired, wrong name, no handshake: only the registry's side can mend it


@dataclass(frozen=True)
class ClientSetup:
    """The facts the instructions need for one registry."""

    registry: Registry
    host: str  # host[:port] as clients write it in image names
    known: bool  # False: the registry has no URL, ``host`` is a placeholder
    plain_http: bool
    htpasswd: bool


@dataclass(frozen=True)
class Finding:
    """What the way to the registry needs; ``source`` names where that was learnt (the doctor and when)."""

    transport: str
    source: str = ""
    detail: str = ""  # the doctor's own summary


@dataclass(frozen=True)
class Block:
    """Lines to paste: shell commands when ``into`` is empty, else the contents of that file (or place)."""

    lines: tuple[str, ...]
    into: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Step:
    """One thing to do: ``source`` is set when the doctor's findings are why the step is there."""

    title: str
    notes: tuple[str, ...] = ()
    blocks: tuple[Block, ...] = ()
    source: str = ""
    optional: bool = False  # only "if ...": the doctor has not looked yet

    @property
    def lines(self) -> list[str]:
        return [line for block in self.blocks for line in block.lines]


@dataclass(frozen=True)
class Context:
    """Everything one client's steps are made of."""

    setup: ClientSetup
    found: Finding
    login: str  # shell-quoted
    robot: str = shlex.quote(EXAMPLE_ROBOT)

    @property
    def host(self) -> str:
        return self.setup.host

    @property
    def image(self) -> str:
        return f"{self.setup.host}/{EXAMPLE_IMAGE}"


def client_setup(registry: Registry) -> ClientSetup:
    """Host and transport from the registry's URL; a placeholder host when no URL is set."""
    parts = urlsplit(registry.url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return ClientSetup(
        registry=registry,
        host=host or PLACEHOLDER_HOST,
        known=bool(host),
        plain_http=parts.scheme == "http",
        htpasswd=registry.auth_mode == AuthMode.HTPASSWD,
    )


def finding(setup: ClientSetup, run: DoctorRun | None) -> Finding:
    """What the latest doctor run's tls check says about the address clients use; the URL alone without one."""
    check = _tls_check(setup, run)
    if setup.plain_http:
        if check is None:
            return Finding(PLAIN_HTTP, f"the registry's URL is {setup.registry.url}")
        return Finding(PLAIN_HTTP, f"the doctor found plain HTTP at {setup.host} on {_when(run)}", check["summary"])
    if check is None or check.get("status") == "skip":
        return Finding(UNKNOWN)
    summary = str(check.get("summary", ""))
    status = check.get("status")
    fixes = " ".join(str(line) for line in check.get("fix", []))
    if status == "fail" and "certs.d/" in fixes and "ca.crt" in fixes:
        kind = "a self-signed certificate" if "self-signed" in summary else "a certificate from an unknown CA"
        return Finding(PRIVATE_CA, f"the doctor found {kind} on {_when(run)}", summary)
    if status == "ok" and "certs.d/" in summary:
        # Trusted on the doctor's host only through a certs.d file: every client needs the same CA.
        return Finding(PRIVATE_CA, f"the doctor found a certificate from a private CA on {_when(run)}", summary)
    if status == "fail":
        return Finding(BROKEN, f"the doctor found a certificate clients refuse on {_when(run)}", summary)
    return Finding(TRUSTED, f"the doctor found a trusted certificate on {_when(run)}", summary)


def _tls_check(setup: ClientSetup, run: DoctorRun | None) -> dict | None:
    if run is None or not setup.known or not _same_address(run.url, setup.registry.url):
        return None
    return next((check for check in run.checks if check.get("id") == "tls"), None)


def _same_address(probed: str, url: str) -> bool:
    a, b = urlsplit(probed), urlsplit(url)
    return (a.scheme, a.netloc.rsplit("@", 1)[-1]) == (b.scheme, b.netloc.rsplit("@", 1)[-1])


def _when(run: DoctorRun | None) -> str:
    return f"{run.started_at:%Y-%m-%d %H:%M} UTC" if run is not None else ""


def steps(setup: ClientSetup, client: str, found: Finding, *, login: str) -> list[Step]:
    """The steps ``client`` needs for this registry, as ``login`` (an unquoted user name)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}; one of {', '.join(CLIENTS)}")
    context = Context(setup, found, shlex.quote(login or PLACEHOLDER_LOGIN))
    return [step for step in BUILDERS[client](context) if step is not None]


def _docker(c: Context) -> list[Step | None]:
    return [
        _trust_step(c, f"/etc/docker/certs.d/{c.host}", "Docker reads it at each connection: no restart needed."),
        _docker_plain_http(c),
        _broken_step(c),
        _login_step(c, "docker login -u {user} {host}", "docker login -u {user} --password-stdin {host}"),
        _robot_step(c, f'echo "$ROBOT_SECRET" | docker login -u {c.robot} --password-stdin {c.host}'),
        Step(
            "Pull and push",
            blocks=(Block((f"docker pull {c.image}", f"docker tag app:1.0 {c.image}", f"docker push {c.image}")),),
        ),
    ]


def _podman(c: Context) -> list[Step | None]:
    flag = " --tls-verify=false" if c.found.transport == PLAIN_HTTP else ""
    return [
        _trust_step(c, f"/etc/containers/certs.d/{c.host}", "Podman, skopeo and buildah all read this directory."),
        _containers_plain_http(c, "podman"),
        _broken_step(c),
        _login_step(
            c, f"podman login -u {{user}}{flag} {{host}}", f"podman login -u {{user}}{flag} --password-stdin {{host}}"
        ),
        _robot_step(c, f'echo "$ROBOT_SECRET" | podman login -u {c.robot}{flag} --password-stdin {c.host}'),
        Step(
            "Pull and push",
            blocks=(
                Block(
                    (
                        f"podman pull{flag} {c.image}",
                        f"podman tag app:1.0 {c.image}",
                        f"podman push{flag} {c.image}",
                    )
                ),
            ),
        ),
    ]


def _skopeo(c: Context) -> list[Step | None]:
    plain = c.found.transport == PLAIN_HTTP
    flag, src = (" --tls-verify=false", " --src-tls-verify=false") if plain else ("", "")
    return [
        _trust_step(
            c,
            f"/etc/containers/certs.d/{c.host}",
            "Without root: put ca.crt in a directory of your own and add --cert-dir DIR "
            "(skopeo copy: --src-cert-dir DIR / --dest-cert-dir DIR) to each command.",
        ),
        _containers_plain_http(c, "skopeo"),
        _broken_step(c),
        _login_step(c, f"skopeo login --username {{user}}{flag} {{host}}", ""),
        _robot_step(c, f'skopeo login --username {c.robot} --password "$ROBOT_SECRET"{flag} {c.host}'),
        Step(
            "Inspect and copy",
            blocks=(
                Block(
                    (
                        f"skopeo inspect{flag} docker://{c.image}",
                        f"skopeo copy{src} docker://{c.image} oci-archive:app.tar",
                    )
                ),
            ),
        ),
    ]


def _containerd(c: Context) -> list[Step | None]:
    flags = ""
    if c.found.transport == PLAIN_HTTP:
        flags = " --plain-http"
    elif c.found.transport == PRIVATE_CA:
        flags = f" --hosts-dir {CONTAINERD_CERTS_D}"
    secret = "your password" if c.setup.htpasswd else "a personal access token"
    return [
        _hosts_toml_step(c, "containerd (and the CRI, so Kubernetes) reads"),
        _broken_step(c),
        Step(
            "Pull with ctr",
            notes=(f"ctr asks for the password: give {secret}.",),
            blocks=(Block((f"ctr images pull{flags} --user {c.login} {c.image}",)),),
        ),
    ]


def _kubernetes(c: Context) -> list[Step | None]:
    return [
        _hosts_toml_step(c, "every node's containerd reads (kubelet pulls through it)"),
        _broken_step(c),
        Step(
            "Give the cluster a pull secret",
            notes=("Use a robot with read on the repositories the cluster pulls, not a person's login.",),
            blocks=(
                Block(
                    (
                        "kubectl create secret docker-registry regcred \\",
                        f"  --docker-server={c.host} \\",
                        f"  --docker-username={c.robot} \\",
                        '  --docker-password="$ROBOT_SECRET"',
                    )
                ),
            ),
        ),
        Step(
            "Use it in the pod spec",
            blocks=(
                Block(
                    (
                        "spec:",
                        "  imagePullSecrets:",
                        "    - name: regcred",
                        "  containers:",
                        "    - name: app",
                        f"      image: {c.image}",
                    ),
                    into="the pod's spec",
                ),
            ),
        ),
        Step(
            "Or attach it to a service account",
            blocks=(
                Block(("""kubectl patch serviceaccount default -p '{"imagePullSecrets": [{"name": "regcred"}]}'""",)),
            ),
        ),
    ]


def _login_step(c: Context, command: str, stdin_command: str) -> Step:
    user = c.login
    lines = [command.format(user=user, host=c.host)]
    if c.setup.htpasswd:
        notes = ("Enter your password when asked (htpasswd mode: personal access tokens do not work here).",)
    else:
        notes = ("When asked for the password, paste a personal access token rather than your password.",)
        if stdin_command:
            lines.append('echo "$REGISTRY_TOKEN" | ' + stdin_command.format(user=user, host=c.host))
    return Step("Log in", notes=notes, blocks=(Block(tuple(lines)),))


def _robot_step(c: Context, command: str) -> Step:
    note = "A robot logs in with the secret shown once when it was made; keep its name in single quotes."
    return Step("Log in as a robot (CI, servers)", notes=(note,), blocks=(Block((command,)),))


def _trust_step(c: Context, directory: str, note: str) -> Step | None:
    if c.found.transport not in (PRIVATE_CA, UNKNOWN):
        return None
    optional = c.found.transport == UNKNOWN
    title = "If its certificate comes from a private CA: trust that CA" if optional else "Trust the registry's CA"
    notes = [
        "Copy the CA's certificate (for a self-signed certificate, the certificate itself) to every client.",
        note,
    ]
    return Step(
        title,
        notes=_with_detail(c, notes),
        blocks=(Block((f"sudo mkdir -p {directory}", f"sudo cp ca.crt {directory}/ca.crt")),),
        source=c.found.source,
        optional=optional,
    )


def _docker_plain_http(c: Context) -> Step | None:
    if c.found.transport != PLAIN_HTTP:
        return None
    notes = (
        "Docker refuses plain HTTP unless the registry is listed as insecure; passwords and tokens then "
        "cross the network unencrypted. Merge the entry into the file's other settings.",
    )
    return Step(
        "Allow plain HTTP",
        notes=_with_detail(c, notes),
        blocks=(
            Block((f'{{"insecure-registries": ["{c.host}"]}}',), into="/etc/docker/daemon.json"),
            Block(("sudo systemctl restart docker",)),
        ),
        source=c.found.source,
    )


def _containers_plain_http(c: Context, client: str) -> Step | None:
    if c.found.transport != PLAIN_HTTP:
        return None
    notes = (
        f"{client} refuses plain HTTP unless told: the commands below carry --tls-verify=false. "
        "Instead, the registry can be marked insecure once for podman, skopeo and buildah:",
    )
    return Step(
        "Allow plain HTTP",
        notes=_with_detail(c, notes),
        blocks=(
            Block(
                ("[[registry]]", f'location = "{c.host}"', "insecure = true"), into="/etc/containers/registries.conf"
            ),
        ),
        source=c.found.source,
    )


def _hosts_toml_step(c: Context, reader: str) -> Step | None:
    transport = c.found.transport
    if transport not in (PLAIN_HTTP, PRIVATE_CA, UNKNOWN):
        return None
    directory = f"{CONTAINERD_CERTS_D}/{c.host}"
    scheme = "http" if transport == PLAIN_HTTP else "https"
    toml = [
        f'server = "{scheme}://{c.host}"',
        "",
        f'[host."{scheme}://{c.host}"]',
        '  capabilities = ["pull", "resolve"]',
    ]
    commands = [f"sudo mkdir -p {directory}"]
    if transport == PLAIN_HTTP:
        title = "Allow plain HTTP in containerd"
    else:
        title = "Trust the registry's CA in containerd"
        if transport == UNKNOWN:
            title = "If its certificate comes from a private CA: trust that CA in containerd"
        toml.append(f'  ca = "{directory}/ca.crt"')
        commands.append(f"sudo cp ca.crt {directory}/ca.crt")
    notes = [
        f"A hosts.toml that {reader}; containerd's registry configuration in /etc/containerd/config.toml "
        f'needs config_path = "{CONTAINERD_CERTS_D}" (then restart containerd).',
    ]
    if transport == PLAIN_HTTP:
        notes.append("(skip_verify = true is for https with a certificate you cannot install, not for plain HTTP.)")
    return Step(
        title,
        notes=_with_detail(c, notes),
        blocks=(Block(tuple(commands)), Block(tuple(toml), into=f"{directory}/hosts.toml")),
        source=c.found.source,
        optional=transport == UNKNOWN,
    )


def _broken_step(c: Context) -> Step | None:
    if c.found.transport != BROKEN:
        return None
    notes = (
        "Clients refuse this certificate until an administrator fixes it on the registry (the doctor page "
        "says how); do not turn verification off to get round it.",
    )
    return Step("The registry's certificate is refused", notes=_with_detail(c, notes), source=c.found.source)


def _with_detail(c: Context, notes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return (*notes, f"The doctor said: {c.found.detail}") if c.found.detail else tuple(notes)


BUILDERS = {
    "docker": _docker,
    "podman": _podman,
    "skopeo": _skopeo,
    "containerd": _containerd,
    "kubernetes": _kubernetes,
}


def as_text(setup: ClientSetup, client: str, found: Finding, *, login: str) -> str:
    """One client's steps as plain text, numbered, commands after ``$``, files under their path."""
    out = [f"{CLIENT_NAMES[client]} for {setup.registry.service} at {setup.host}"]
    for number, step in enumerate(steps(setup, client, found, login=login), 1):
        out.append(f"{number}. {step.title}")
        if step.source:
            out.append(f"   ({step.source})")
        out += [f"   {note}" for note in step.notes]
        for block in step.blocks:
            if block.into:
                out.append(f"   in {block.into}:")
                out += [f"     {line}" if line else "" for line in block.lines]
            else:
                # A line continued with a backslash goes on without a prompt, so it pastes as one command.
                prompts = ["$ ", *("  " if line.endswith("\\") else "$ " for line in block.lines[:-1])]
                out += [f"   {prompt}{line}" for prompt, line in zip(prompts, block.lines, strict=True)]
    return "\n".join(out)
