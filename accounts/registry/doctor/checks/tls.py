"""The ``tls`` check: the certificate clients see (expiry, name, issuer, chain), or plain HTTP and its client flags.

The certificate is read without trusting it (``cryptography``: expiry, subjectAltName), then a second
handshake verifies it against this host's trust store, and against a ``certs.d`` CA file when this
host has one for the registry: that is how docker, podman and skopeo trust a private CA.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from accounts.registry.doctor.http import TIMEOUT, Unreachable, endpoint, peer_chain
from accounts.registry.doctor.model import Check, State, Target

WARN_DAYS = 30
# Where docker, and podman/skopeo/buildah, look for a registry's CA (``HOST:PORT/ca.crt``).
CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))
# OpenSSL's X509_V_ERR_* codes that ``ssl`` hands back in ``verify_code``.
EXPIRED, NOT_YET_VALID = 10, 9
SELF_SIGNED, SELF_SIGNED_IN_CHAIN = 18, 19
NO_LOCAL_ISSUER, NO_ISSUER_LEAF = 20, 21
NAME_MISMATCH = (62, 64)


@dataclass(frozen=True)
class Verdict:
    """A verified handshake's outcome: ``code`` None when it verified."""

    code: int | None
    reason: str = ""
    ca_file: str = ""


def check(target: Target, state: State) -> Check:
    scheme, host, port = endpoint(target.url)
    if scheme != "https":
        return _plain_http(host, port)
    if state.reachable is False:  # already waited for once: a blackholed address must not cost every check
        return Check("tls", "skip", f"{host}:{port} cannot be reached ({state.unreachable_reason}); see proxy")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in peer_chain(target.url)]
    except Unreachable as exc:
        if "SSL" in exc.reason or "TLS" in exc.reason:
            return _no_handshake(host, port, exc.reason)
        return Check("tls", "skip", f"{host}:{port} cannot be reached ({exc.reason}); see proxy")
    return _judge(host, port, chain, _verify(host, port))


def _judge(host: str, port: int, chain: list[x509.Certificate], verdict: Verdict) -> Check:
    leaf = chain[0]
    evidence = _describe(leaf, len(chain), verdict)
    days = (leaf.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400
    if days < 0 or verdict.code == EXPIRED:
        summary = f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        return Check("tls", "fail", summary, evidence, _renew_fix(host, port))
    if not _names_host(leaf, host) or verdict.code in NAME_MISMATCH:
        summary = f"the certificate is not valid for {host}: its names are {', '.join(_names(leaf)) or 'none'}"
        return Check("tls", "fail", summary, evidence, _rename_fix(host, port))
    if verdict.code == NOT_YET_VALID:
        summary = f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return Check("tls", "fail", summary, evidence, ["check this host's clock (see clock), or reissue it"])
    if verdict.code is not None:
        return _untrusted(host, port, chain, verdict, evidence)
    if days < WARN_DAYS:
        summary = f"the certificate expires in {days:.0f} days ({leaf.not_valid_after_utc:%Y-%m-%d} UTC)"
        return Check("tls", "warn", summary, evidence, _renew_fix(host, port))
    if verdict.ca_file:
        # A private CA handed to clients through certs.d is the documented setup: ok, with a reminder.
        summary = f"trusted through {verdict.ca_file} (every client needs the same CA file), valid {days:.0f} more days"
        return Check("tls", "ok", summary, evidence)
    return Check("tls", "ok", f"a trusted certificate for {host}, valid for {days:.0f} more days", evidence)


def _untrusted(host: str, port: int, chain: list[x509.Certificate], verdict: Verdict, evidence: list[str]) -> Check:
    """Self-signed, a CA clients do not know, or a chain missing its intermediates (as far as one can tell)."""
    leaf, top = chain[0], chain[-1]
    if verdict.code == SELF_SIGNED or leaf.issuer == leaf.subject:
        summary = "the certificate is self-signed: clients refuse it unless they are given it as a CA"
    elif verdict.code == SELF_SIGNED_IN_CHAIN:
        summary = f"the chain ends at {top.subject.rfc4514_string()}, a CA that this host does not trust"
    elif verdict.code in (NO_LOCAL_ISSUER, NO_ISSUER_LEAF) and len(chain) == 1:
        # Python cannot fetch the missing issuer: a private CA and a missing intermediate look the same.
        summary = (
            f"the issuer {leaf.issuer.rfc4514_string()} is not trusted here and the server sends no intermediate: "
            "either a private CA (give clients its certificate) or an incomplete chain (serve the intermediates)"
        )
    elif verdict.code in (NO_LOCAL_ISSUER, NO_ISSUER_LEAF):
        summary = (
            f"the chain the server sends ends at {top.issuer.rfc4514_string()}, which is not trusted here: "
            "a private CA, or an intermediate still missing"
        )
    else:
        summary = f"the certificate does not verify: {verdict.reason}"
    fix = _trust_fix(host, port)
    if verdict.code in (NO_LOCAL_ISSUER, NO_ISSUER_LEAF):
        fix.append(
            "if a public CA issued it: put the full chain (the certificate, then its intermediates) "
            "in the file that http.tls.certificate names, and restart the registry"
        )
    return Check("tls", "fail", summary, evidence, fix)


def _verify(host: str, port: int) -> Verdict:
    """Verify against this host's trust store; failing that, against a certs.d CA file for HOST:PORT."""
    verdict = _handshake(host, port, None)
    if verdict.code is None:
        return verdict
    for directory in CERTS_DIRS:
        ca_file = directory / f"{host}:{port}" / "ca.crt"
        if ca_file.is_file():
            found = _handshake(host, port, str(ca_file))
            if found.code is None:
                return Verdict(None, ca_file=str(ca_file))
    return verdict


def _handshake(host: str, port: int, ca_file: str | None) -> Verdict:
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return Verdict(None)
    except ssl.SSLCertVerificationError as exc:
        return Verdict(exc.verify_code, exc.verify_message or str(exc))
    except OSError as exc:
        return Verdict(-1, str(exc))


def _describe(leaf: x509.Certificate, sent: int, verdict: Verdict) -> list[str]:
    subject = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [
        f"subject: {subject[0].value if subject else leaf.subject.rfc4514_string()}",
        f"names (subjectAltName): {', '.join(_names(leaf)) or 'none'}",
        f"issuer: {leaf.issuer.rfc4514_string()}{' (itself: self-signed)' if leaf.issuer == leaf.subject else ''}",
        f"valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"certificates the server sends: {sent}",
        "verified here: yes" if verdict.code is None else f"verified here: no ({verdict.reason})",
    ]


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        alt = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return [f"DNS:{name}" for name in alt.get_values_for_type(x509.DNSName)] + [
        f"IP:{address}" for address in alt.get_values_for_type(x509.IPAddress)
    ]


def _names_host(leaf: x509.Certificate, host: str) -> bool:
    """Whether the subjectAltName covers ``host`` (clients ignore the common name)."""
    names = _names(leaf)
    try:
        return f"IP:{ipaddress.ip_address(host)}" in names
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in (n[4:].lower() for n in names if n.startswith("DNS:")):
        if name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:]):
            return True
    return False


def _trust_fix(host: str, port: int) -> list[str]:
    where = f"{host}:{port}"
    return [
        f"docker: put the CA certificate (for a self-signed one, the certificate itself) in "
        f"/etc/docker/certs.d/{where}/ca.crt on every client",
        f"podman, skopeo, buildah: /etc/containers/certs.d/{where}/ca.crt",
        f"containerd (Kubernetes nodes): /etc/containerd/certs.d/{where}/hosts.toml, with config_path = "
        '"/etc/containerd/certs.d" in its registry config:',
        f'  server = "https://{where}"',
        f'  [host."https://{where}"]',
        f'    ca = "/etc/containerd/certs.d/{where}/ca.crt"',
        "or issue the registry a certificate from a CA the clients already trust",
    ]


def _renew_fix(host: str, port: int) -> list[str]:
    return [
        f"renew the certificate for {host} and put it (with its intermediates) in the file that "
        "http.tls.certificate names (its key in http.tls.key), then restart the registry",
        f"check it: openssl s_client -connect {host}:{port} -servername {host} </dev/null | openssl x509 -noout -dates",
    ]


def _rename_fix(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
        name = f"IP:{host}"
    except ValueError:
        name = f"DNS:{host}"
    return [
        f"issue a certificate whose subjectAltName holds {name} (clients ignore the common name), "
        "put it in http.tls.certificate and restart the registry",
        f"or have clients use a name the certificate holds instead of {host}:{port}",
    ]


def _no_handshake(host: str, port: int, reason: str) -> Check:
    summary = f"no TLS handshake with {host}:{port}: {reason}"
    fix = [
        "if the registry speaks plain HTTP on this port, use an http:// URL (and see the plain-HTTP advice), "
        "or give it http.tls.certificate and http.tls.key",
    ]
    return Check("tls", "fail", summary, [reason], fix)


def _plain_http(host: str, port: int) -> Check:
    where = f"{host}:{port}"
    summary = "plain HTTP: clients refuse it unless told this registry is insecure, and passwords cross in clear"
    fix = [
        f'docker: in /etc/docker/daemon.json, "insecure-registries": ["{where}"], then restart dockerd',
        f'podman: /etc/containers/registries.conf: [[registry]] location = "{where}" insecure = true',
        "skopeo, podman, buildah: --tls-verify=false (skopeo: --src-tls-verify=false / --dest-tls-verify=false)",
        "ctr (containerd), oras: --plain-http",
        "better: serve TLS (http.tls.certificate and http.tls.key in the registry's config, or a TLS proxy)",
    ]
    return Check("tls", "warn", summary, [f"{where} answers over http://"], fix)
