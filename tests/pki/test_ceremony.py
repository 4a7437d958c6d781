"""Offline root ceremony end to end through `pnc`: only certificates cross the air gap, and openssl accepts the
resulting chains and the root CRL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from api.cli.main import app
from api.context import build_services
from api.settings import Settings
from pki.ceremony import OfflineRoot, import_root, import_sub_ca, request_sub_ca, subject_name
from pki.errors import NotFound, PolicyViolation
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import CertKind, Generation
from tests.helpers import make_csr, openssl_verify, p256

runner = CliRunner()
pytestmark = pytest.mark.interop


@pytest.fixture
def online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PNC_DATA_DIR", str(tmp_path / "online"))
    monkeypatch.setenv("PNC_KEY_PASSPHRASE", "online-pass")
    monkeypatch.setenv("PNC_DEV_MODE", "false")
    monkeypatch.setenv("PNC_CEREMONY_PASSPHRASE", "ceremony-pass")
    return tmp_path


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_offline_root_ceremony_end_to_end(online: Path) -> None:
    cdir, t = online / "ceremony", online
    _ok(["ceremony", "create-root", "--dir", str(cdir), "--name", "v2g-root", "--kind", "v2g-root",
         "--cn", "Offline V2G Root", "--org", "Test CPO", "--dc", "V2G", "--out", str(t / "root.pem")])
    assert not (online / "online").exists() or not list((online / "online").rglob("v2g-root.key.pem"))
    assert (cdir / "keys" / "v2g-root.key.pem").exists()
    assert cdir.stat().st_mode & 0o077 == 0

    _ok(["ca", "import-root", "--cert", str(t / "root.pem"), "--name", "v2g-root", "--kind", "v2g-root"])
    _ok(["ca", "request-subca", "--name", "cpo-sub1", "--kind", "cpo-sub1", "--parent", "v2g-root",
         "--cn", "CPO Sub-CA 1", "--org", "Test CPO", "--dc", "V2G", "--out", str(t / "sub1.csr")])
    # the online service cannot use the offline root's key
    res = runner.invoke(app, ["ca", "request-subca", "--name", "x", "--kind", "secc-leaf", "--parent", "v2g-root",
                              "--cn", "x", "--org", "Test CPO"])
    assert res.exit_code == 1
    _ok(["ceremony", "sign-subca", "--dir", str(cdir), "--csr", str(t / "sub1.csr"), "--kind", "cpo-sub1",
         "--out", str(t / "sub1.pem")])
    _ok(["ca", "import-subca", "--cert", str(t / "sub1.pem")])

    svc = build_services(Settings())
    try:
        sub2 = svc.authority.create_sub_ca("cpo-sub2", CertKind.CPO_SUB2, "cpo-sub1",
                                           subject_name("CPO Sub-CA 2", "Test CPO", "DE", "V2G"))
        assert svc.authority.ca("v2g-root").external_key
        with pytest.raises(PolicyViolation, match="offline root"):
            svc.authority.create_sub_ca("cpo-sub1b", CertKind.CPO_SUB1, "v2g-root",
                                        subject_name("CPO Sub-CA 1b", "Test CPO", "DE", "V2G"))
        issued = svc.authority.issue_from_csr(make_csr(p256(), CN="DE*PNC*E1*1", O="Test CPO", C="DE", DC="CPO"),
                                              CertKind.SECC_LEAF, issuer=sub2.name)
        root = x509.load_pem_x509_certificate((t / "root.pem").read_bytes())
        openssl_verify(issued.certificate, list(issued.chain), root)
        sub1_serial = format(x509.load_pem_x509_certificate((t / "sub1.pem").read_bytes()).serial_number, "x")
    finally:
        svc.close()

    _ok(["ceremony", "revoke", "--dir", str(cdir), "--serial", sub1_serial, "--reason", "keyCompromise"])
    _ok(["ceremony", "crl", "--dir", str(cdir), "--days", "30", "--out", str(t / "root.crl")])
    res = subprocess.run(["openssl", "crl", "-in", str(t / "root.crl"), "-CAfile", str(t / "root.pem"), "-noout",
                          "-text"], capture_output=True, text=True, check=False)
    assert "verify OK" in res.stderr + res.stdout, res.stderr
    assert sub1_serial.upper() in res.stdout.upper().replace(":", "") and "Key Compromise" in res.stdout
    assert "X509v3 CRL Number" in res.stdout


def test_ceremony_refusals(tmp_path: Path) -> None:
    keys = KeyManager()
    keys.register(FileKeyStore(tmp_path / "c" / "keys", b"pass"))
    root = OfflineRoot(tmp_path / "c", keys)
    try:
        with pytest.raises(NotFound):
            root.crl()
        root.create_root("mo-root", CertKind.MO_ROOT, Generation.ISO15118_2,
                         subject_name("MO Root", "Test", "DE"), key_algorithm=KeyAlgorithm.P256)
        csr = make_csr(p256(), CN="MO Sub-CA 1", O="Test", C="DE")
        with pytest.raises(PolicyViolation):
            root.sign_sub_ca(csr, CertKind.CPO_SUB1)  # a V2G kind under an MO root
        with pytest.raises(PolicyViolation):
            root.sign_sub_ca(csr, CertKind.CONTRACT_LEAF)  # not a sub-CA
        with pytest.raises(PolicyViolation, match="expected"):
            root.sign_sub_ca(csr, CertKind.MO_SUB1, expect_common_name="Other")
        tampered = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
        tampered[-3] ^= 0x01
        with pytest.raises(PolicyViolation, match="self-signature"):
            root.sign_sub_ca(bytes(tampered), CertKind.MO_SUB1)
        cert = root.sign_sub_ca(csr, CertKind.MO_SUB1)
        assert cert.issuer == root.root_certificate().subject
        assert root.crl().number == 1 and root.crl().number == 2
    finally:
        root.close()


def test_import_subca_refuses_a_certificate_from_another_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyManager()
    keys.register(FileKeyStore(tmp_path / "c" / "keys", b"pass"))
    real = OfflineRoot(tmp_path / "c", keys)
    other_keys = KeyManager()
    other_keys.register(FileKeyStore(tmp_path / "o" / "keys", b"pass"))
    other = OfflineRoot(tmp_path / "o", other_keys)
    svc = build_services(Settings(data_dir=tmp_path / "online", key_passphrase="p", dev_mode=False))
    try:
        subject = subject_name("V2G Root", "Test", "DE", "V2G")
        cert = real.create_root("v2g-root", CertKind.V2G_ROOT, Generation.ISO15118_2, subject,
                                key_algorithm=KeyAlgorithm.P256)
        other.create_root("v2g-root", CertKind.V2G_ROOT, Generation.ISO15118_2, subject,
                          key_algorithm=KeyAlgorithm.P256)
        import_root(svc.authority, cert.public_bytes(serialization.Encoding.PEM), "v2g-root", CertKind.V2G_ROOT)
        csr = request_sub_ca(svc.authority, "cpo-sub1", CertKind.CPO_SUB1, "v2g-root",
                             subject_name("CPO Sub-CA 1", "Test", "DE", "V2G"))
        csr_pem = csr.public_bytes(serialization.Encoding.PEM)
        forged = other.sign_sub_ca(csr_pem, CertKind.CPO_SUB1)  # same names, wrong root key
        with pytest.raises(PolicyViolation, match="not issued by"):
            import_sub_ca(svc.authority, forged.public_bytes(serialization.Encoding.PEM))
        with pytest.raises(PolicyViolation, match="pending"):  # a pending sub-CA cannot issue
            svc.authority.issue_from_csr(make_csr(p256(), CN="DE*PNC*E1*1", O="Test", C="DE", DC="CPO"),
                                         CertKind.SECC_LEAF, issuer="cpo-sub1")
        good = real.sign_sub_ca(csr_pem, CertKind.CPO_SUB1)
        assert import_sub_ca(svc.authority, good.public_bytes(serialization.Encoding.PEM)).status == "active"
        assert svc.audit_log().verify().ok
    finally:
        real.close()
        other.close()
        svc.close()
