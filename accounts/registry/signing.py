"""Token signing keys: generation, certificates, the libtrust kid, JWT signing. Pure crypto.

Distribution 2.8 verifies a token through the ``x5c`` chain in its header or a
libtrust-style ``kid``; we send both, so 2.8 and 3.x accept our tokens.

Was ``accounts/signing.py`` before the layout split.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Certificates are backdated so a registry whose clock is behind still accepts
# them, and outlive the key's use by far: an expired certificate fails every pull.
CERT_BACKDATE = timedelta(days=1)
CERT_LIFETIME = timedelta(days=3650)


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER public key, first 240 bits, base32, 12 groups of 4 joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("signing keys must be EC P-256")
    return key


def make_certificate(key: ec.EllipticCurvePrivateKey, issuer: str, now: datetime) -> x509.Certificate:
    """A self-signed certificate for the key; the registry's rootcertbundle holds it."""
    kid = libtrust_kid(key.public_key())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer} token signing {kid[:14]}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "registryadmin"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERT_BACKDATE)
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Signer:
    """A loaded signing key, ready for the hot path (no decryption per request)."""

    kid: str
    key: ec.EllipticCurvePrivateKey
    x5c: tuple[str, ...]

    @classmethod
    def from_pem(cls, private_pem: bytes, cert_pem: str) -> Signer:
        key = load_private_key(private_pem)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        return cls(kid=libtrust_kid(key.public_key()), key=key, x5c=(der,))

    def sign(self, claims: dict[str, Any]) -> str:
        headers = {"typ": "JWT", "kid": self.kid, "x5c": list(self.x5c)}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)
