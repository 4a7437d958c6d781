"""Tiny certificate factory for ISO 15118 chain tests (independent of pki.profiles, so tests can break rules)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@dataclass
class Node:
    cert: x509.Certificate
    key: Any


def _name(cn: str, dc: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc)])


def make(cn: str, issuer: Node | None, *, ca: bool, pathlen: int | None = None, dc: str = "OEM",
         key: Any = None, days: int = 365, start: dt.datetime | None = None, key_cert_sign: bool = True,
         serial: int | None = None, curve: ec.EllipticCurve | None = None) -> Node:
    if key is None:
        key = ec.generate_private_key(curve or ec.SECP256R1())
    start = start or NOW - dt.timedelta(days=1)
    subject = _name(cn, dc)
    signer = issuer.key if issuer else key
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=not ca,
                                      key_cert_sign=ca and key_cert_sign, crl_sign=ca, encipher_only=False,
                                      decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:  # openssl -x509_strict (our oracle) insists on AKI below the root
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False)
    if isinstance(signer, ed448.Ed448PrivateKey):
        algo = None
    elif isinstance(signer, ec.EllipticCurvePrivateKey) and signer.curve.name == "secp521r1":
        algo = hashes.SHA512()
    else:
        algo = hashes.SHA256()
    return Node(b.sign(signer, algo), key)


def oem_chain(prefix: str = "OEM", curve: ec.EllipticCurve | None = None,
              pcid: str = "WMIV1234567890ABCD") -> tuple[Node, Node, Node, Node]:
    root = make(f"{prefix} Root", None, ca=True, curve=curve, days=3650)
    sub1 = make(f"{prefix} Sub1", root, ca=True, pathlen=1, curve=curve)
    sub2 = make(f"{prefix} Sub2", sub1, ca=True, pathlen=0, curve=curve)
    leaf = make(pcid, sub2, ca=False, curve=curve)
    return root, sub1, sub2, leaf
