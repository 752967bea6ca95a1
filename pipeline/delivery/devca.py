"""A throwaway certificate authority and signing certificate, for trying content credentials out
and for tests: never for delivering to anyone (nobody outside trusts it).

``likeness credentials dev-ca DIR`` writes ``ca.pem`` (the trust anchor), ``chain.pem`` (the
signing certificate, then the CA) and ``key.pem``; point ``deliver.c2pa`` at the last two and
``deliver.c2pa.trust`` (or ``likeness verify --trust``) at the first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.atomic import write_bytes


@dataclass(frozen=True)
class DevIdentity:
    """The files :func:`write_dev_ca` wrote."""

    ca: Path
    chain: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "likeness development (untrusted)"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def write_dev_ca(
    folder: Path,
    *,
    valid_from: dt.datetime | None = None,
    days: int = 365,
    name: str = "likeness development signer",
) -> DevIdentity:
    """Write a development CA and an ES256 signing certificate C2PA accepts into ``folder``.

    Args:
        folder: where ``ca.pem``, ``chain.pem`` and ``key.pem`` go.
        valid_from: when the signing certificate starts (now by default; a date in the past
            with few ``days`` makes an expired one, for tests).
        days: how long the signing certificate is valid.
        name: its common name.
    """
    now = valid_from or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("likeness development CA"))
        .issuer_name(_name("likeness development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=max(days, 1) + 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    folder.mkdir(parents=True, exist_ok=True)
    out = DevIdentity(folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
    write_bytes(out.ca, pem(ca))
    write_bytes(out.chain, pem(leaf) + pem(ca))
    write_bytes(
        out.key,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )  # fmt: skip
    out.key.chmod(0o600)
    return out
