"""Path validation verdicts, each compared with `openssl verify -x509_strict` as an independent judge."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from pki.iso15118.pathval import PathError, validate_path
from tests.helpers import pem
from tests.pki.iso15118.chains import NOW, make, oem_chain


def openssl_ok(leaf: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate,
               at: dt.datetime = NOW) -> bool:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "root.pem").write_bytes(pem(root))
        (p / "leaf.pem").write_bytes(pem(leaf))
        args = ["openssl", "verify", "-x509_strict", "-attime", str(int(at.timestamp())), "-CAfile",
                str(p / "root.pem")]
        if chain:
            (p / "chain.pem").write_bytes(b"".join(pem(c) for c in chain))
            args += ["-untrusted", str(p / "chain.pem")]
        return subprocess.run([*args, str(p / "leaf.pem")], capture_output=True, check=False).returncode == 0


def ours(leaf: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate,
         at: dt.datetime = NOW) -> str:
    try:
        validate_path(leaf, chain, [root], at)
    except PathError as exc:
        return exc.code
    return "OK"


def test_good_chain_p256_agrees_with_openssl() -> None:
    root, sub1, sub2, leaf = oem_chain()
    assert openssl_ok(leaf.cert, [sub2.cert, sub1.cert], root.cert)
    path = validate_path(leaf.cert, [sub1.cert, sub2.cert], [root.cert], NOW)  # order of the pool does not matter
    assert path.intermediates == (sub2.cert, sub1.cert) and path.anchor == root.cert


@pytest.mark.parametrize("curve", [ec.SECP521R1(), None])
def test_good_chain_iso20_curves(curve: ec.EllipticCurve | None) -> None:
    if curve is None:  # Ed448 throughout
        root = make("R", None, ca=True, key=ed448.Ed448PrivateKey.generate())
        sub = make("S", root, ca=True, pathlen=0, key=ed448.Ed448PrivateKey.generate())
        leaf = make("WMIV1234567890ABCD", sub, ca=False, key=ed448.Ed448PrivateKey.generate())
        chain = [sub.cert]
    else:
        root, sub1, sub2, leaf = oem_chain(curve=curve)
        chain = [sub2.cert, sub1.cert]
    assert openssl_ok(leaf.cert, chain, root.cert)
    assert ours(leaf.cert, chain, root.cert) == "OK"


def test_leaf_directly_under_root_private_environment() -> None:
    root = make("R", None, ca=True)
    leaf = make("WMIV1234567890ABCD", root, ca=False)
    assert openssl_ok(leaf.cert, [], root.cert) and ours(leaf.cert, [], root.cert) == "OK"


def _case_foreign_root() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    _, sub1, sub2, leaf = oem_chain()
    other_root = make("OEM Root", None, ca=True)  # same name, different key: an impostor root
    return leaf.cert, [sub2.cert, sub1.cert], other_root.cert, "FAILED_CertChainError"


def _case_missing_sub_ca() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root, _, sub2, leaf = oem_chain()
    return leaf.cert, [sub2.cert], root.cert, "FAILED_CertChainError"


def _case_expired_sub_ca() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True, days=3650)
    sub1 = make("S1", root, ca=True, pathlen=1, start=NOW - dt.timedelta(days=400), days=10)
    sub2 = make("S2", sub1, ca=True, pathlen=0)
    leaf = make("WMIV1234567890ABCD", sub2, ca=False)
    return leaf.cert, [sub2.cert, sub1.cert], root.cert, "FAILED_CertificateExpired"


def _case_expired_leaf() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True, days=3650)
    leaf = make("WMIV1234567890ABCD", root, ca=False, start=NOW - dt.timedelta(days=30), days=10)
    return leaf.cert, [], root.cert, "FAILED_CertificateExpired"


def _case_pathlen_violation() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True)
    sub1 = make("S1", root, ca=True, pathlen=0)  # pathlen 0 but has a sub-CA below
    sub2 = make("S2", sub1, ca=True, pathlen=0)
    leaf = make("WMIV1234567890ABCD", sub2, ca=False)
    return leaf.cert, [sub2.cert, sub1.cert], root.cert, "FAILED_CertChainError"


def _case_issuer_not_ca() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True)
    fake_ca = make("S1", root, ca=False)  # an end entity used as issuer
    leaf = make("WMIV1234567890ABCD", fake_ca, ca=False)
    return leaf.cert, [fake_ca.cert], root.cert, "FAILED_CertChainError"


def _case_no_key_cert_sign() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True)
    sub = make("S1", root, ca=True, pathlen=0, key_cert_sign=False)
    leaf = make("WMIV1234567890ABCD", sub, ca=False)
    return leaf.cert, [sub.cert], root.cert, "FAILED_CertChainError"


def _case_tampered_signature() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root, sub1, sub2, leaf = oem_chain()
    der = bytearray(leaf.cert.tbs_certificate_bytes)
    whole = bytearray(leaf.cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                         fromlist=["Encoding"]).Encoding.DER))
    i = whole.find(bytes(der)) + der.find(b"WMIV")  # flip one byte of the subject CN inside tbsCertificate
    whole[i] ^= 0x01
    return x509.load_der_x509_certificate(bytes(whole)), [sub2.cert, sub1.cert], root.cert, "FAILED_CertChainError"


def _case_too_deep() -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate, str]:
    root = make("R", None, ca=True)
    s1 = make("S1", root, ca=True)
    s2 = make("S2", s1, ca=True)
    s3 = make("S3", s2, ca=True)
    leaf = make("WMIV1234567890ABCD", s3, ca=False)
    return leaf.cert, [s3.cert, s2.cert, s1.cert], root.cert, "FAILED_CertChainError"


@pytest.mark.parametrize("case", [_case_foreign_root, _case_missing_sub_ca, _case_expired_sub_ca, _case_expired_leaf,
                                  _case_pathlen_violation, _case_issuer_not_ca, _case_no_key_cert_sign,
                                  _case_tampered_signature, _case_too_deep])
def test_rejections(case) -> None:  # type: ignore[no-untyped-def]
    leaf, chain, root, code = case()
    assert ours(leaf, chain, root) == code
    if case is not _case_too_deep:  # openssl has no ISO depth limit; every other verdict must agree
        assert not openssl_ok(leaf, chain, root)
    else:
        assert openssl_ok(leaf, chain, root)


def test_not_yet_valid_and_expired_root() -> None:
    root = make("R", None, ca=True, days=30, start=NOW - dt.timedelta(days=60))
    leaf = make("WMIV1234567890ABCD", root, ca=False)
    assert ours(leaf.cert, [], root.cert) == "FAILED_CertificateExpired"
    assert not openssl_ok(leaf.cert, [], root.cert)
    early = NOW - dt.timedelta(days=5)
    assert ours(leaf.cert, [], root.cert, at=early) == "FAILED_CertChainError"
    assert not openssl_ok(leaf.cert, [], root.cert, at=early)
