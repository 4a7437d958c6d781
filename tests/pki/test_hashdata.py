"""OCPP CertificateHashData equals what cryptography's OCSP request builder computes (an independent path)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from pki.authority import Authority
from pki.errors import InvalidRequest
from pki.hashdata import CertificateHashData, HashAlgorithm, certificate_hash_data, serial_to_hex
from pki.profiles import CertKind
from pki.store import repo
from tests.helpers import make_csr, p256

ALGS = {HashAlgorithm.SHA1: hashes.SHA1(), HashAlgorithm.SHA256: hashes.SHA256(),
        HashAlgorithm.SHA384: hashes.SHA384(), HashAlgorithm.SHA512: hashes.SHA512()}


@pytest.mark.parametrize("alg", list(HashAlgorithm))
def test_hash_data_matches_ocsp_certid(pki: Authority, alg: HashAlgorithm) -> None:
    issued = pki.issue_from_csr(make_csr(p256(), CN="DE*PNC*E1*1", O="T", C="DE", DC="CPO"), CertKind.SECC_LEAF)
    issuer = issued.chain[0]
    ours = certificate_hash_data(issued.certificate, issuer, alg)
    req = ocsp.OCSPRequestBuilder().add_certificate(issued.certificate, issuer, ALGS[alg]).build()
    assert ours.issuer_name_hash == req.issuer_name_hash.hex()
    assert ours.issuer_key_hash == req.issuer_key_hash.hex()
    assert ours.serial_number == format(req.serial_number, "x")
    # and the precomputed issuer hashes find the issuing CA in one lookup
    cas = repo.find_issuers(pki.db, alg.value, ours.issuer_name_hash, ours.issuer_key_hash)
    assert cas == [issued.record.ca_id]


def test_ocpp_form_parsing() -> None:
    assert serial_to_hex(4095) == "fff"
    h = CertificateHashData.from_ocpp({"hashAlgorithm": "SHA256", "issuerNameHash": "AB" * 32,
                                       "issuerKeyHash": "cd" * 32, "serialNumber": "0FFF"})
    assert h.issuer_name_hash == "ab" * 32 and h.serial_number == "fff"
    assert h.to_ocpp()["hashAlgorithm"] == "SHA256"
    with pytest.raises(InvalidRequest, match="SHA1 is not allowed"):
        CertificateHashData.from_ocpp({"hashAlgorithm": "SHA1", "issuerNameHash": "ab" * 20,
                                       "issuerKeyHash": "ab" * 20, "serialNumber": "1"})
    with pytest.raises(InvalidRequest, match="64 hex digits"):
        CertificateHashData.from_ocpp({"hashAlgorithm": "SHA256", "issuerNameHash": "zz",
                                       "issuerKeyHash": "ab" * 32, "serialNumber": "1"})
    with pytest.raises(InvalidRequest, match="1-40 hex digits"):
        CertificateHashData.from_ocpp({"hashAlgorithm": "SHA256", "issuerNameHash": "ab" * 32,
                                       "issuerKeyHash": "ab" * 32, "serialNumber": "f" * 41})
