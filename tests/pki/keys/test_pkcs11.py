"""PKCS#11 key store against SoftHSM2: keys made in the token, non-extractable, and signatures that openssl accepts
for certificates, CRLs and OCSP responses (the same interop judge as for file keys)."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509 import ocsp

from pki.authority import Authority
from pki.errors import KeyStoreError
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.pkcs11 import Pkcs11EcKey, Pkcs11Ed448Key, Pkcs11KeyStore, make_uri, parse_uri
from pki.profiles import CertKind, Generation
from pki.store.repo import Database
from tests import softhsm as _softhsm
from tests.conftest import make_hierarchies
from tests.helpers import make_csr, name, openssl_verify, p256, pem
from tests.softhsm import SoftHsm, hsm_session

pytestmark = pytest.mark.interop
hsm, softhsm_token = _softhsm.hsm, _softhsm.softhsm_token  # fixtures


def _store(h: SoftHsm) -> Pkcs11KeyStore:
    return Pkcs11KeyStore(h.module, h.token, h.pin)


@pytest.fixture
def hsm_authority(db: Database, hsm: SoftHsm) -> Authority:
    km = KeyManager(default_scheme="pkcs11")
    km.register(_store(hsm))
    return Authority(db, km, public_url="http://127.0.0.1:8080", key_scheme="pkcs11")


def test_uri_roundtrip() -> None:
    uri = make_uri("my token", "ca;1")
    assert parse_uri(uri) == {"token": "my token", "object": "ca;1"}
    with pytest.raises(KeyStoreError):
        parse_uri("pkcs11:token=x")
    with pytest.raises(KeyStoreError):
        parse_uri("file:x")


@pytest.mark.parametrize("alg", [KeyAlgorithm.P256, KeyAlgorithm.P521])
def test_ec_keys_are_generated_in_token_and_not_extractable(hsm: SoftHsm, alg: KeyAlgorithm) -> None:
    store = _store(hsm)
    uri = store.generate("k1", alg)
    assert uri == f"pkcs11:token={hsm.token};object=k1"
    signer = store.signer(uri)
    assert isinstance(signer, ec.EllipticCurvePrivateKey) and isinstance(signer, Pkcs11EcKey)
    sig = signer.sign(b"data", ec.ECDSA(hashes.SHA256()))
    signer.public_key().verify(sig, b"data", ec.ECDSA(hashes.SHA256()))  # raises if wrong
    with pytest.raises(KeyStoreError, match="cannot be exported"):
        signer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    with pytest.raises(KeyStoreError):
        signer.private_numbers()
    with pytest.raises(KeyStoreError, match="already holds"):
        store.generate("k1", alg)
    # the token itself refuses to reveal the scalar
    with hsm_session(hsm) as s:
        key = s.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="k1")
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.SENSITIVE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[pkcs11.Attribute.VALUE]
    store.delete(uri)
    with pytest.raises(KeyStoreError, match="not found"):
        store.signer(uri)


def test_wrong_pin_is_a_clean_error_without_the_pin(hsm: SoftHsm) -> None:
    # A fresh library session is needed for a wrong-PIN login; use a separate token label so the cached session
    # of other stores is untouched.
    store = Pkcs11KeyStore(hsm.module, "no-such-token", "000000")
    with pytest.raises(KeyStoreError) as info:
        store.generate("x", KeyAlgorithm.P256)
    assert "000000" not in str(info.value)
    assert "000000" not in repr(store)


def test_full_hierarchies_with_hsm_keys_verify_with_openssl(hsm_authority: Authority) -> None:
    make_hierarchies(hsm_authority, iso20=True)
    cas = hsm_authority.cas()
    assert cas and all(ca.key_uri.startswith("pkcs11:") for ca in cas)
    for kind, gen, cn, org in [(CertKind.SECC_LEAF, Generation.ISO15118_2, "DE*PNC*E1*1", "Test CPO"),
                               (CertKind.SECC_LEAF, Generation.ISO15118_20, "DE*PNC*E1*2", "Test CPO"),
                               (CertKind.STATION_CLIENT, Generation.OCPP, "CS001", "Test CPO")]:
        key = p256() if gen is not Generation.ISO15118_20 else ec.generate_private_key(ec.SECP521R1())
        attrs = {"CN": cn, "O": org, "C": "DE"}
        if kind is CertKind.SECC_LEAF:
            attrs["DC"] = "CPO"
        issued = hsm_authority.issue_from_csr(make_csr(key, **attrs), kind, generation=gen)
        root = hsm_authority.ca_certificate(hsm_authority.root_of(hsm_authority.ca_by_id(issued.record.ca_id)))
        openssl_verify(issued.certificate, list(issued.chain), root)


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_crl_and_ocsp_signed_in_token_verify_with_openssl(hsm_authority: Authority, tmp_path: Path) -> None:
    make_hierarchies(hsm_authority)
    issued = hsm_authority.issue_from_csr(make_csr(p256(), CN="CS002", O="Test CPO", C="DE"),
                                          CertKind.STATION_CLIENT)
    issuer_ca = hsm_authority.ca_by_id(issued.record.ca_id)
    issuer_cert = hsm_authority.ca_certificate(issuer_ca)
    root_cert = hsm_authority.ca_certificate(hsm_authority.root_of(issuer_ca))
    signer = hsm_authority.keys.signer(issuer_ca.key_uri)
    assert isinstance(signer, Pkcs11EcKey)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    revoked = (x509.RevokedCertificateBuilder().serial_number(issued.certificate.serial_number)
               .revocation_date(now).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(issuer_cert.subject).last_update(now)
           .next_update(now + dt.timedelta(days=1)).add_revoked_certificate(revoked)
           .add_extension(x509.CRLNumber(1), critical=False)
           .sign(signer, hashes.SHA256()))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(pem(issuer_cert))
    (tmp_path / "chain.pem").write_bytes(b"".join(pem(c) for c in (*issued.chain, root_cert)))
    res = _openssl("crl", "-in", str(tmp_path / "crl.pem"), "-CAfile", str(tmp_path / "ca.pem"), "-noout")
    assert res.returncode == 0 and "verify OK" in res.stderr + res.stdout, res.stderr
    tampered = bytearray(crl.public_bytes(serialization.Encoding.DER))
    tampered[-5] ^= 0x01
    (tmp_path / "bad.der").write_bytes(bytes(tampered))
    res = _openssl("crl", "-inform", "DER", "-in", str(tmp_path / "bad.der"), "-CAfile", str(tmp_path / "ca.pem"),
                   "-noout")
    assert "verify OK" not in res.stderr + res.stdout

    response = (ocsp.OCSPResponseBuilder()
                .add_response(cert=issued.certificate, issuer=issuer_cert, algorithm=hashes.SHA256(),
                              cert_status=ocsp.OCSPCertStatus.REVOKED, this_update=now,
                              next_update=now + dt.timedelta(hours=1), revocation_time=now,
                              revocation_reason=x509.ReasonFlags.key_compromise)
                .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer_cert)
                .sign(signer, hashes.SHA256()))
    (tmp_path / "resp.der").write_bytes(response.public_bytes(serialization.Encoding.DER))
    (tmp_path / "leaf.pem").write_bytes(pem(issued.certificate))
    res = _openssl("ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(tmp_path / "ca.pem"),
                   "-sha256", "-cert", str(tmp_path / "leaf.pem"), "-CAfile", str(tmp_path / "chain.pem"))
    assert "Response verify OK" in res.stderr + res.stdout, res.stderr + res.stdout
    assert "revoked" in res.stdout.lower()


def test_ed448_signer_in_token(hsm: SoftHsm, tmp_path: Path) -> None:
    store = _store(hsm)
    signer = store.signer(store.generate("ed", KeyAlgorithm.ED448))
    assert isinstance(signer, ed448.Ed448PrivateKey) and isinstance(signer, Pkcs11Ed448Key)
    now = dt.datetime.now(dt.UTC)
    subject = name(CN="Ed448 HSM Root", O="Test", C="DE")
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(signer.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.public_key()), critical=False)
            .sign(signer, None))
    (tmp_path / "c.pem").write_bytes(pem(cert))
    res = _openssl("verify", "-x509_strict", "-CAfile", str(tmp_path / "c.pem"), str(tmp_path / "c.pem"))
    assert res.returncode == 0, res.stdout + res.stderr
    with pytest.raises(KeyStoreError):
        signer.private_bytes_raw()


def test_concurrent_signing_is_safe(hsm: SoftHsm) -> None:
    store = _store(hsm)
    signer = store.signer(store.generate("conc", KeyAlgorithm.P256))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(40):
                msg = f"{i}-{j}".encode()
                signer.public_key().verify(signer.sign(msg, ec.ECDSA(hashes.SHA256())), msg, ec.ECDSA(hashes.SHA256()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
