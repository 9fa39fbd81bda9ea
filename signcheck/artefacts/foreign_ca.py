"""A certificate authority the policy does not trust, issuing a Fulcio-shaped certificate for
the right identity (KEY-04): an attacker's own CA, or a Sigstore instance other than the one
the cluster trusts. The leaf carries what Fulcio writes: the identity as a URI SAN, the code-
signing usage, and the OIDC issuer in Sigstore's certificate extensions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from signcheck.localenv import pki

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
"""Sigstore's OIDC issuer extension, raw string (deprecated, still read by verifiers)."""
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
"""Sigstore's OIDC issuer extension, DER UTF8String."""


def _utf8_string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) >= 128:
        raise ValueError("issuer too long for a short-form DER length")
    return bytes([0x0C, len(raw)]) + raw


@dataclass(frozen=True)
class Issued:
    certificate: Path
    chain: Path
    root_pem: str


def issue(public_key_pem: str, identity: str, issuer: str, directory: Path) -> Issued:
    """A root named like Fulcio's (`sigstore`) and a leaf for `public_key_pem` claiming
    `identity` from `issuer`, valid from a minute ago for ten minutes (Fulcio's lifetime)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca = pki.new_ca("sigstore", validity=dt.timedelta(days=1))
    leaf_public = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(leaf_public, ec.EllipticCurvePublicKey):
        raise ValueError("the signing key is not an ECDSA key")
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(leaf_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()), critical=False)
        .add_extension(x509.UnrecognizedExtension(ISSUER_V2, _utf8_string(issuer)), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    root_pem = ca.cert_pem.decode()
    certificate, chain = directory / "leaf.pem", directory / "chain.pem"
    certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    chain.write_text(root_pem)
    return Issued(certificate, chain, root_pem)
