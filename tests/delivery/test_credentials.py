"""Content credentials (C2PA) on a delivered version, through the real chain: signed with a
test CA's certificate, verified, and refused when tampered with or when the certificate has
expired."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import c2pa
import pytest
import yaml

from pipeline.delivery.credentials import TRAINED_MEDIA, C2paParams, load_identity, verify
from pipeline.delivery.devca import write_dev_ca
from pipeline.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNVERIFIED, CredentialsError
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot


def _signed_profile(certs: Path, **c2pa_extra) -> dict:
    ident = {"cert": str(certs / "chain.pem"), "key": str(certs / "key.pem"),
             "trust": str(certs / "ca.pem"), **c2pa_extra}  # fmt: skip
    return {**TEST_PROFILE, "deliver": {"c2pa": ident}}


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A shot delivered and signed: (version folder, trust anchors, workdir)."""
    root = tmp_path_factory.mktemp("signed")
    certs = write_dev_ca(root / "certs").ca.parent
    spec = make_shot(root / "shot", profile=_signed_profile(certs))
    wd = root / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    v = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]
    return Path(v["outputs"]["review"]).parent, certs / "ca.pem", wd


def test_a_delivered_version_is_signed_and_verifies(signed):
    folder, ca, wd = signed
    assert (folder / "sh010_v001.c2pa").is_file() and (folder / "sh010_v001.exr.sha256").is_file()
    v = verify(folder, ca.read_text())
    assert v.ok, v.problems
    assert v.state["sh010_v001.mov"] == "Trusted" and v.state["sh010_v001.exr.sha256"] == "Trusted"
    assert all(s == "Trusted" for s in v.state.values()) and len(v.state) > 3  # QC images too
    assert v.claims["digital_source_type"] == TRAINED_MEDIA
    assert v.claims["actor_id"] == "astro" and v.claims["consent_id"].startswith("test-consent")
    assert len(v.claims["model_sha256"]) == 64 and len(v.claims["source_plate_sha256"]) == 64
    assert v.claims["ingredients"] == ["sh010.mov"] and v.claims["exr_frames"] == 8
    # c2pa's own reader, outside likeness's code, sees the same
    ctx = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"user_anchors": ca.read_text()},
                                                         "verify": {"remote_manifest_fetch": False}}))  # fmt: skip
    with c2pa.Reader(str(folder / "sh010_v001.mov"), context=ctx) as r:
        assert r.get_validation_state() == "Trusted"
        assert TRAINED_MEDIA in r.json()
    events = [json.loads(x) for x in (wd / "audit.log").read_text().splitlines()]
    sign = [e for e in events if e["event"] == "sign"]
    assert (
        len(sign) == 1 and sign[0]["exr_frames"] == 8 and "development signer" in sign[0]["signer"]
    )
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["extra"]["credentials"]["sign_s"] > 0


def test_without_a_trust_list_nothing_is_trusted(signed):
    folder, _, _ = signed
    v = verify(folder / "sh010_v001.mov")
    assert not v.ok and v.state["sh010_v001.mov"] == "Valid" and "no trust list" in v.problems[-1]


@pytest.mark.parametrize("damage", ["movie byte", "exr byte", "exr removed", "exr added"])
def test_tampering_is_found(signed, tmp_path, damage):
    folder, ca, _ = signed
    copy = tmp_path / "v001"
    shutil.copytree(folder, copy)
    frame = copy / "exr" / "sh010.1004.exr"
    if damage == "movie byte":
        movie = copy / "sh010_v001.mov"
        data = bytearray(movie.read_bytes())
        data[len(data) // 3] ^= 0x01
        movie.write_bytes(bytes(data))
    elif damage == "exr byte":
        data = bytearray(frame.read_bytes())
        data[-10] ^= 0x01
        frame.write_bytes(bytes(data))
    elif damage == "exr removed":
        frame.unlink()
    else:
        shutil.copy(frame, copy / "exr" / "sh010.1009.exr")
    v = verify(copy, ca.read_text())
    assert not v.ok
    text = " ".join(v.problems)
    expect = {"movie byte": "sh010_v001.mov", "exr byte": "changed since signing",
              "exr removed": "missing", "exr added": "not in the signed listing"}[damage]  # fmt: skip
    assert expect in text, v.problems
    args = ["verify", str(copy), "--trust", str(ca)]
    assert main(args) == EXIT_UNVERIFIED
    assert main(["verify", str(folder), "--trust", str(ca)]) == EXIT_OK


def test_an_expired_certificate_is_refused_before_any_work(tmp_path):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    certs = write_dev_ca(tmp_path / "certs", valid_from=old, days=30).ca.parent
    with pytest.raises(CredentialsError, match="expired on"):
        load_identity(C2paParams(cert=str(certs / "chain.pem"), key=str(certs / "key.pem")))
    spec = make_shot(tmp_path / "shot", profile=_signed_profile(certs))
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == EXIT_BAD_INPUT
    assert not (wd / "shots").exists()  # refused in preflight: nothing ran


def test_required_signing_needs_a_certificate_and_unsigned_versions_say_so(tmp_path, caplog):
    spec = make_shot(
        tmp_path / "shot", profile={**TEST_PROFILE, "deliver": {"c2pa": {"required": True}}}
    )
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    spec = make_shot(tmp_path / "shot", profile=TEST_PROFILE)
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    assert "the outputs are unsigned" in caplog.text
    folder = wd / "shots" / "sh010" / "v001"
    assert json.loads((folder / "_manifest.json").read_text())["extra"]["credentials"] == "unsigned"
    v = verify(folder, None)
    assert not v.ok and "unsigned" in " ".join(v.problems)
    assert verify(folder / "sh010_v001.mov").state["sh010_v001.mov"] == "missing"


def test_a_key_that_is_not_the_certificates_is_named(tmp_path):
    a = write_dev_ca(tmp_path / "a")
    b = write_dev_ca(tmp_path / "b")
    with pytest.raises(CredentialsError, match="is not the key of the certificate"):
        load_identity(C2paParams(cert=str(a.chain), key=str(b.key)))
    with pytest.raises(CredentialsError, match="cannot read the signing certificate"):
        load_identity(C2paParams(cert=str(tmp_path / "nope.pem"), key=str(a.key)))
    params = yaml.safe_load(yaml.safe_dump({"cert": "x"}))
    assert C2paParams(**params).validate()  # a cert without its key
