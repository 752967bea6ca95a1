"""Content credentials (C2PA) on synthetic deliverables, through the official ``c2pa-python``.

A delivered version is signed with the studio's certificate (``deliver.c2pa`` in the profile):

- the review movie and every image of the QC page carry an embedded manifest;
- the EXR frames, which C2PA cannot embed into, are listed with their SHA-256 in
  ``<shot>_<version>.exr.sha256`` (``sha256sum`` format) and that listing is signed: its hard
  binding is in the sidecar manifest ``<shot>_<version>.c2pa``, so every EXR's hash is covered
  by the signature.

Every manifest says the content was made with trained algorithmic media (the IPTC digital source
type), names the actor and the consent reference (not the consent's text), the model's SHA-256,
the tool and its version and the delivery time, and lists the source plate as an ingredient.
:func:`verify` reads them back against a trust list. No network is used unless the profile names
a timestamp authority (``tsa_url``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pipeline import __version__
from pipeline.atomic import atomic_path, write_bytes
from pipeline.errors import CredentialsError
from pipeline.hashing import sha256_file

#: IPTC digital source type of content made by a trained model (C2PA's "AI-generated").
TRAINED_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: The label of likeness's own assertion (what was synthesized, from what, with which consent).
ASSERTION = "com.likeness.synthesis"
#: What C2PA can embed into, by file suffix.
EMBED_FORMATS = {".mov": "video/quicktime", ".mp4": "video/mp4", ".png": "image/png",
                 ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
                 ".tiff": "image/tiff"}  # fmt: skip
LISTING_SUFFIX = ".exr.sha256"
SIDECAR_SUFFIX = ".c2pa"
_ALGS = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ps384": c2pa.C2paSigningAlg.PS384,
    "ps512": c2pa.C2paSigningAlg.PS512,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}
# EKUs C2PA accepts on a signing certificate (C2PA 2.1, 14.5.1).
_SIGNING_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string,
    "1.3.6.1.5.5.7.3.36",  # id-kp-documentSigning
    "1.3.6.1.4.1.311.76.59.1.9",  # Microsoft C2PA signing
    "1.3.6.1.4.1.62558.2.1",  # C2PA signing
}


@dataclass(frozen=True)
class C2paParams:
    """The ``deliver.c2pa:`` section of a profile.

    Attributes:
        cert: the signing certificate chain (PEM, end-entity first, then intermediates).
        key: its private key (PEM, PKCS#8).
        alg: the signature algorithm the key is for.
        tsa_url: an RFC 3161 timestamp authority (the only use of the network); None: none.
        required: refuse to deliver unsigned (a missing or expired certificate stops the shot
            in preflight).
        trust: trust anchors (PEM) ``likeness verify`` accepts signatures from.
    """

    cert: str | None = None
    key: str | None = None
    alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    tsa_url: str | None = None
    required: bool = False
    trust: str | None = None

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; the files are read when a version is signed."""
        probs = []
        if bool(self.cert) != bool(self.key):
            probs.append(("cert", "name both the certificate and its key, or neither"))
        if self.required and not self.cert:
            probs.append(("required", "signing is required but no certificate is named"))
        return probs

    def resolved(self, base: Path) -> C2paParams:
        """The file paths made absolute against ``base`` (the naming file's folder)."""
        fix = lambda p: p if p is None or Path(p).expanduser().is_absolute() else str(base / p)  # noqa: E731
        return replace(self, cert=fix(self.cert), key=fix(self.key), trust=fix(self.trust))


@dataclass(frozen=True)
class SigningIdentity:
    """A loaded, checked signing certificate and key.

    Attributes:
        chain: the PEM chain as given.
        key: the PEM private key.
        alg: the algorithm name.
        tsa_url: the timestamp authority, or None.
        subject: the end-entity certificate's subject, for logs and the audit log.
        not_after: when the certificate expires.
        cert_sha256: the SHA-256 of the end-entity certificate (DER).
    """

    chain: bytes
    key: bytes
    alg: str
    tsa_url: str | None
    subject: str
    not_after: dt.datetime
    cert_sha256: str

    def signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(_ALGS[self.alg], self.chain, self.key, self.tsa_url)
        return c2pa.Signer.from_info(info)


def load_identity(params: C2paParams, now: dt.datetime | None = None) -> SigningIdentity | None:
    """The signing identity the profile names, checked; None when it names none (unsigned).

    Raises:
        CredentialsError: signing is required and no certificate is named; the certificate or
            key cannot be read; the certificate is not yet valid or expired, is a CA, lacks the
            digital-signature use or a C2PA signing purpose; the key is not the certificate's.
    """
    if not params.cert or not params.key:
        if params.required:
            raise CredentialsError(
                "signing is required (deliver.c2pa.required) but no certificate is named",
                "set deliver.c2pa.cert and deliver.c2pa.key to the studio's signing certificate "
                "chain and key (PEM)",
            )
        return None
    now = now or dt.datetime.now(dt.UTC)
    chain_pem, key_pem = _read(params.cert, "certificate"), _read(params.key, "key")
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise CredentialsError(
            f"cannot read the signing certificate {params.cert} or key {params.key}: {exc}",
            "give a PEM certificate chain (end-entity first) and an unencrypted PEM key",
        ) from exc
    leaf = certs[0]
    _check_leaf(leaf, params.cert, now)
    if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
        raise CredentialsError(
            f"the key {params.key} is not the key of the certificate {params.cert}",
            "name the private key that belongs to the signing certificate",
        )
    der = leaf.public_bytes(serialization.Encoding.DER)
    return SigningIdentity(
        chain_pem, key_pem, params.alg, params.tsa_url, leaf.subject.rfc4514_string(),
        leaf.not_valid_after_utc, hashlib.sha256(der).hexdigest(),
    )  # fmt: skip


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CredentialsError(
            f"cannot read the signing {what} {path}: {exc.strerror or exc}",
            f"fix deliver.c2pa.{'cert' if what == 'certificate' else 'key'} in the profile",
        ) from exc


def _check_leaf(leaf: x509.Certificate, path: str, now: dt.datetime) -> None:
    """A certificate C2PA accepts for signing, valid now."""
    if now > leaf.not_valid_after_utc:
        raise CredentialsError(
            f"the signing certificate {path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
            "renew the studio's signing certificate and update deliver.c2pa.cert",
        )
    if now < leaf.not_valid_before_utc:
        raise CredentialsError(
            f"the signing certificate {path} is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "check the certificate's dates and this machine's clock",
        )
    ext = leaf.extensions
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CredentialsError(f"{path} is a CA certificate", "sign with an end-entity one")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = ext.get_extension_for_class(x509.KeyUsage).value
        ekus = {o.dotted_string for o in ext.get_extension_for_class(x509.ExtendedKeyUsage).value}
    except x509.ExtensionNotFound as exc:
        raise CredentialsError(
            f"the signing certificate {path} lacks a key usage or extended key usage",
            "C2PA needs digitalSignature and a signing purpose (e.g. emailProtection)",
        ) from exc
    if not usage.digital_signature or not ekus & _SIGNING_EKUS:
        raise CredentialsError(
            f"the certificate {path} is not for signing content (key usage digitalSignature "
            f"{usage.digital_signature}, extended key usages {sorted(ekus)})",
            "use a certificate issued for C2PA or document signing",
        )


@dataclass(frozen=True)
class Claims:
    """What every manifest of a version says.

    Attributes:
        shot, version: the shot version.
        actor_id: the actor.
        consent_id: the consent record's reference (never its personal text).
        model_sha256: the fine-tuned model's checkpoint SHA-256.
        source_plate: the plate's path; it is listed as the ingredient.
        source_plate_sha256: the plate's fingerprint.
        delivered: when the version was delivered (UTC, ISO 8601).
    """

    shot: str
    version: str
    actor_id: str
    consent_id: str
    model_sha256: str | None
    source_plate: str
    source_plate_sha256: str
    delivered: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def manifest(self, title: str) -> dict[str, Any]:
        """The C2PA manifest definition of one output called ``title``."""
        return {
            "claim_generator_info": [{"name": "likeness", "version": __version__}],
            "title": title,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {"actions": [{
                        "action": "c2pa.created",
                        "digitalSourceType": TRAINED_MEDIA,
                        "softwareAgent": {"name": "likeness", "version": __version__},
                        "description": "a performer's face synthesized by a model trained on "
                        "the actor's references, composited into the source plate",
                        "when": self.delivered,
                    }]},
                },
                {
                    "label": ASSERTION,
                    "data": {
                        "shot": self.shot, "version": self.version, "actor_id": self.actor_id,
                        "consent_id": self.consent_id, "model_sha256": self.model_sha256,
                        "source_plate_sha256": self.source_plate_sha256,
                        "tool": f"likeness {__version__}", "delivered": self.delivered,
                    },
                },
            ],
        }  # fmt: skip


def _context(trust: str | None = None) -> c2pa.Context:
    """Offline settings: no remote manifests, no OCSP; ``trust``: PEM trust anchors."""
    settings: dict[str, Any] = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust:
        settings["trust"] = {"user_anchors": trust}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


class VersionSigner:
    """Signs the outputs of one shot version with one identity and one set of claims.

    Args:
        identity: the signing certificate and key.
        claims: what the manifests say.
    """

    def __init__(self, identity: SigningIdentity, claims: Claims) -> None:
        self.identity = identity
        self.claims = claims
        self._plate = Path(claims.source_plate)

    def _builder(self, title: str) -> c2pa.Builder:
        builder = c2pa.Builder(self.claims.manifest(title), context=_context())
        fmt = EMBED_FORMATS.get(self._plate.suffix.lower())
        ingredient = {"title": self._plate.name, "relationship": "componentOf"}
        if fmt and self._plate.is_file():
            with self._plate.open("rb") as src:
                builder.add_ingredient({**ingredient, "format": fmt}, fmt, src)
        else:  # a sequence, or a format C2PA cannot read: the plate's fingerprint stands in
            stand_in = f"{self.claims.source_plate_sha256}  {self.claims.source_plate}\n"
            builder.add_ingredient(
                {**ingredient, "format": "application/octet-stream"},
                "application/octet-stream", io.BytesIO(stand_in.encode()),
            )  # fmt: skip
        return builder

    def sign_embedded(self, path: Path) -> None:
        """Embed a signed manifest into ``path`` (a movie or an image), replacing it atomically.

        Raises:
            CredentialsError: the format cannot carry a manifest, or signing failed.
        """
        fmt = EMBED_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise CredentialsError(f"C2PA cannot embed a manifest in {path.name}")
        try:
            builder = self._builder(path.name)
            with atomic_path(path, suffix=path.suffix) as tmp:
                with path.open("rb") as src, open(tmp, "wb") as dst:
                    builder.sign(self.identity.signer(), fmt, src, dst)
        except c2pa.C2paError as exc:
            raise CredentialsError(f"signing {path} failed: {exc}") from exc

    def sign_frames(self, folder: Path, stem: str, frames: list[Path]) -> tuple[Path, Path]:
        """List ``frames`` (paths under ``folder``) with their SHA-256 and sign the listing.

        Returns:
            the listing ``<stem>.exr.sha256`` and the sidecar manifest ``<stem>.c2pa``.

        Raises:
            CredentialsError: signing failed.
        """
        listing = frame_listing(folder, frames)
        list_path = folder / f"{stem}{LISTING_SUFFIX}"
        side_path = folder / f"{stem}{SIDECAR_SUFFIX}"
        write_bytes(list_path, listing)
        try:
            builder = self._builder(list_path.name)
            builder.set_no_embed()
            manifest = builder.sign(
                self.identity.signer(), "application/octet-stream", io.BytesIO(listing),
                io.BytesIO(),
            )  # fmt: skip
        except c2pa.C2paError as exc:
            raise CredentialsError(f"signing the EXR listing {list_path} failed: {exc}") from exc
        write_bytes(side_path, manifest)
        return list_path, side_path


def frame_listing(folder: Path, frames: list[Path]) -> bytes:
    """``sha256sum`` lines (``<hex>  <path relative to folder>``) of ``frames``, sorted."""
    lines = sorted(f"{sha256_file(f)}  {f.relative_to(folder).as_posix()}\n" for f in frames)
    return "".join(lines).encode()


@dataclass
class Verdict:
    """What :func:`verify` found for one file or version.

    Attributes:
        path: what was checked.
        ok: present, intact and signed by a trusted certificate.
        state: C2PA's validation state per file (``Trusted``, ``Valid``: intact but not
            trusted, ``Invalid``), or ``missing``.
        problems: what is wrong, in words.
        claims: what the manifests say (actor, consent, model, source type, plate, signer).
    """

    path: Path
    ok: bool = True
    state: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str) -> None:
        self.ok = False
        self.problems.append(what)


def verify(path: Path, trust: str | None = None) -> Verdict:
    """Check the credentials of a movie, an image, or a delivered version folder.

    Args:
        path: a file C2PA embeds into, or a version folder (its movie, its QC images, and its
            EXR frames against the signed listing).
        trust: PEM trust anchors; without them nothing can be trusted.
    """
    path = Path(path)
    verdict = Verdict(path)
    if path.is_dir():
        _verify_version(path, trust, verdict)
    elif path.suffix.lower() in EMBED_FORMATS:
        _verify_embedded(path, trust, verdict)
    else:
        verdict.fail(f"{path}: not a movie, an image or a version folder")
    if trust is None and verdict.ok:
        verdict.fail("no trust list given: intact, but nobody vouches for the signer")
    return verdict


def _read_state(reader: c2pa.Reader, name: str, verdict: Verdict, trusted: bool) -> dict | None:
    state = reader.get_validation_state() or "Invalid"
    verdict.state[name] = state
    store = json.loads(reader.json())
    failures = (reader.get_validation_results() or {}).get("activeManifest", {}).get("failure", [])
    broken = {f.get("code", "?") for f in failures} - {"signingCredential.untrusted"}
    if state == "Invalid" or broken:
        codes = ", ".join(sorted(broken)) or "invalid"
        verdict.fail(f"{name}: the manifest does not verify ({codes})")
    elif state != "Trusted" and trusted:
        verdict.fail(f"{name}: intact, but not signed by a certificate of the trust list")
    return store["manifests"].get(store.get("active_manifest", ""))


def _verify_embedded(path: Path, trust: str | None, verdict: Verdict) -> None:
    try:
        reader = c2pa.Reader(str(path), context=_context(trust))
    except c2pa.C2paError as exc:
        verdict.state[path.name] = "missing"
        verdict.fail(f"{path.name}: no content credentials ({type(exc).__name__}: {exc})")
        return
    with reader:
        _note_claims(_read_state(reader, path.name, verdict, trust is not None), verdict)


def _verify_version(folder: Path, trust: str | None, verdict: Verdict) -> None:
    sidecars = sorted(folder.glob(f"*{SIDECAR_SUFFIX}"))
    movies = [p for p in folder.iterdir() if p.suffix.lower() in (".mov", ".mp4")]
    if not sidecars:
        verdict.fail(
            f"{folder}: no signed EXR listing (*{SIDECAR_SUFFIX}): the version is unsigned"
        )
    for side in sidecars:
        _verify_frames(folder, side, trust, verdict)
    for item in [*movies, *sorted((folder / "qc").glob("*.png"))]:
        _verify_embedded(item, trust, verdict)


def _verify_frames(folder: Path, side: Path, trust: str | None, verdict: Verdict) -> None:
    listing_path = side.with_name(side.name.removesuffix(SIDECAR_SUFFIX) + LISTING_SUFFIX)
    if not listing_path.is_file():
        verdict.fail(f"{listing_path.name}: the signed EXR listing is missing")
        return
    listing = listing_path.read_bytes()
    try:
        reader = c2pa.Reader("application/octet-stream", io.BytesIO(listing),
                             manifest_data=side.read_bytes(), context=_context(trust))  # fmt: skip
    except c2pa.C2paError as exc:
        verdict.fail(f"{side.name}: unreadable manifest ({type(exc).__name__}: {exc})")
        return
    with reader:
        _note_claims(_read_state(reader, listing_path.name, verdict, trust is not None), verdict)
    listed = {}
    for line in listing.decode(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {p.relative_to(folder).as_posix() for p in (folder / "exr").glob("*.exr")}
    for name in sorted(present - set(listed)):
        verdict.fail(f"{name}: not in the signed listing (added after signing)")
    for name, digest in sorted(listed.items()):
        f = folder / name
        if not f.is_file():
            verdict.fail(f"{name}: listed and signed, but missing")
        elif sha256_file(f) != digest:
            verdict.fail(f"{name}: changed since signing (SHA-256 differs)")
    verdict.claims["exr_frames"] = len(listed)


def _note_claims(manifest: dict | None, verdict: Verdict) -> None:
    if not manifest:
        return
    for a in manifest.get("assertions", []):
        if a.get("label") == ASSERTION:
            verdict.claims.update(a.get("data", {}))
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                if act.get("digitalSourceType"):
                    verdict.claims["digital_source_type"] = act["digitalSourceType"]
    verdict.claims["ingredients"] = [i.get("title") for i in manifest.get("ingredients", [])]
    info = manifest.get("signature_info", {})
    verdict.claims["signer"] = info.get("common_name") or info.get("issuer")
    verdict.claims["signed"] = info.get("time")


def sign_version(folder: Path, stem: str, signer: VersionSigner) -> dict[str, Any]:
    """Sign a written version in ``folder``: the EXR listing and sidecar, the movie, the QC
    images. Returns what was signed, for the manifest and the audit log."""
    frames = sorted((folder / "exr").glob("*.exr"))
    listing, sidecar = signer.sign_frames(folder, stem, frames)
    embedded = [p for p in folder.iterdir() if p.suffix.lower() in (".mov", ".mp4")]
    embedded += sorted((folder / "qc").glob("*.png"))
    for p in embedded:
        signer.sign_embedded(p)
    return {
        "signer": signer.identity.subject,
        "cert_sha256": signer.identity.cert_sha256,
        "exr_frames": len(frames),
        "listing": listing.name,
        "sidecar": sidecar.name,
        "embedded": [os.path.relpath(p, folder) for p in embedded],
    }
