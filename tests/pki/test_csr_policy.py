"""Hostile and wrong CSRs are each refused with a precise error, before any key is touched."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.authority import Authority
from pki.csr_policy import SubjectExpectation
from pki.errors import InvalidRequest, PolicyViolation
from pki.profiles import CertKind
from pki.store import repo
from tests.helpers import make_csr, p256, rsa_key

SECC = {"CN": "DE*PNC*E12345*1", "O": "Test CPO", "C": "DE", "DC": "CPO"}


def _raw_csr(**attrs: str) -> bytes:
    """A CSR with values the builder would refuse (empty CN): a hostile client does not use our builder."""
    oids = {"CN": x509.NameOID.COMMON_NAME, "O": x509.NameOID.ORGANIZATION_NAME}
    subject = x509.Name([x509.NameAttribute(oids[k], v, _validate=False) for k, v in attrs.items()])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(p256(), hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _tampered(csr_pem: bytes) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    return bytes(der)


@pytest.mark.parametrize(
    ("csr_factory", "kind", "error", "message"),
    [
        (lambda: _tampered(make_csr(p256(), **SECC)), CertKind.SECC_LEAF, PolicyViolation, "signature does not verify"),
        (lambda: make_csr(rsa_key(1024), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "RSA-1024 is not allowed"),
        (lambda: make_csr(ec.generate_private_key(ec.SECP192R1()), CN="SN-1", O="Test CPO"),
         CertKind.STATION_CLIENT, PolicyViolation, "EC secp192r1 is not allowed"),
        (lambda: make_csr(rsa_key(2048), **SECC), CertKind.SECC_LEAF, PolicyViolation, "RSA-2048 is not allowed"),
        (lambda: make_csr(ec.generate_private_key(ec.SECP384R1()), **SECC), CertKind.SECC_LEAF, PolicyViolation,
         "EC secp384r1 is not allowed"),
        (lambda: make_csr(p256(), **{**SECC, "DC": "MO"}), CertKind.SECC_LEAF, PolicyViolation,
         "subject DC must be 'CPO'"),
        (lambda: make_csr(p256(), CN="DE*PNC*E12345*1", O="Test CPO", C="DE"), CertKind.SECC_LEAF, PolicyViolation,
         "found none"),
        (lambda: make_csr(p256(), **{**SECC, "CN": "not an evse id"}), CertKind.SECC_LEAF, PolicyViolation,
         "subject CN"),
        (lambda: make_csr(p256(), CN="DEPNCA123456780", O="MO", C="DE", DC="MO"), CertKind.CONTRACT_LEAF,
         PolicyViolation, "check digit"),
        (lambda: make_csr(p256(), CN="http://evil.example", O="Test CPO"), CertKind.STATION_CLIENT,
         PolicyViolation, "not a URL or IP"),
        (lambda: make_csr(p256(), CN="10.0.0.1", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "not a URL or IP"),
        (lambda: make_csr(p256(), CN="not_a_host!", O="Test CPO"), CertKind.CSMS_SERVER, PolicyViolation,
         "fully qualified domain name"),
        (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n",
         CertKind.SECC_LEAF, InvalidRequest, "not a parsable PKCS#10"),
        (lambda: b"\x00\x01garbage", CertKind.SECC_LEAF, InvalidRequest, "not a parsable PKCS#10"),
        (lambda: b"A" * 20_000, CertKind.SECC_LEAF, InvalidRequest, "over the 10000-byte limit"),
        (lambda: make_csr(p256(), CN="SN-1"), CertKind.STATION_CLIENT, PolicyViolation,
         "subject has no O; station-client requires it"),
        (lambda: make_csr(p256(), CN="csms.example.com"), CertKind.CSMS_SERVER, PolicyViolation,
         "subject has no O; csms-server requires it"),
        (lambda: _raw_csr(CN="SN-1", O=""), CertKind.STATION_CLIENT, PolicyViolation, "subject O is empty"),
        (lambda: _raw_csr(CN="", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation, "subject CN is empty"),
        (lambda: make_csr(p256(), CN="   ", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "subject CN is empty"),
        (lambda: make_csr(p256(), CN=" SN-1", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "leading or trailing whitespace"),
        (lambda: make_csr(p256(), CN="SN-1\nCN=admin", O="Test CPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "non-printable character U\\+000A"),
        (lambda: make_csr(p256(), CN="SN-1", O="Test\u202eCPO"), CertKind.STATION_CLIENT, PolicyViolation,
         "subject O contains the non-printable character U\\+202E"),
        (lambda: make_csr(p256(), CN="192.168.1.10", O="Test CPO"), CertKind.CSMS_SERVER, PolicyViolation,
         "not a fully qualified domain name"),
        (lambda: make_csr(p256(), CN="DE-PNC-C00000001-A", O="MO", C="DE", DC="MO"), CertKind.CONTRACT_LEAF,
         PolicyViolation, "must be written as 'DEPNCC00000001A'"),
        (lambda: make_csr(p256(), CN="depncc00000001a", O="MO", C="DE", DC="MO"), CertKind.CONTRACT_LEAF,
         PolicyViolation, "must be written as 'DEPNCC00000001A'"),
        (lambda: make_csr(p256(), CN="DEPNCC00000001", O="MO", C="DE", DC="MO"), CertKind.CONTRACT_LEAF,
         PolicyViolation, "check digit missing"),
    ],
    ids=["bad-signature", "rsa-1024", "p-192", "rsa-for-secc", "p384-for-secc", "wrong-dc", "missing-dc",
         "bad-evseid", "bad-emaid-check-digit", "url-cn", "ip-cn", "bad-fqdn", "garbage-pem", "garbage-der",
         "oversize", "station-without-o", "csms-server-without-o", "empty-o", "empty-cn", "blank-cn", "padded-cn",
         "newline-in-cn", "bidi-override-in-o", "ip-as-fqdn", "emaid-with-separators", "emaid-lower-case",
         "emaid-without-check-digit"],
)
def test_hostile_csrs_are_refused(pki: Authority, csr_factory, kind, error, message) -> None:  # type: ignore[no-untyped-def]
    before = repo.count_certificates(pki.db)
    with pytest.raises(error, match=message):
        pki.issue_from_csr(csr_factory(), kind)
    assert repo.count_certificates(pki.db) == before  # nothing reserved, nothing signed


@pytest.mark.parametrize(
    ("attrs", "expect", "message"),
    [
        ({"CN": "SN-1", "O": "Other CPO"}, SubjectExpectation(common_name="SN-1", organization="Test CPO"),
         "does not match the registered organisation"),
        ({"CN": "SN-2", "O": "Test CPO"}, SubjectExpectation(common_name="SN-1", organization="Test CPO"),
         "does not match the requester's identity"),
    ],
)
def test_station_identity_binding(pki: Authority, attrs: dict[str, str], expect: SubjectExpectation,
                                  message: str) -> None:
    with pytest.raises(PolicyViolation, match=message):
        pki.issue_from_csr(make_csr(p256(), **attrs), CertKind.STATION_CLIENT, expect=expect)
    ok = pki.issue_from_csr(make_csr(p256(), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT,
                            expect=SubjectExpectation(common_name="SN-1", organization="Test CPO"))
    assert ok.certificate.subject.rfc4514_string() == "O=Test CPO,CN=SN-1"


def test_leaf_csr_asking_for_ca_is_refused(pki: Authority) -> None:
    key = p256()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name.from_rfc4514_string("CN=SN-9,O=Test CPO"))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, hashes.SHA256()))
    with pytest.raises(PolicyViolation, match="CA:true"):
        pki.issue_from_csr(csr.public_bytes(serialization.Encoding.PEM), CertKind.STATION_CLIENT)


def test_refusals_are_audited(pki: Authority) -> None:
    with pytest.raises(PolicyViolation):
        pki.issue_from_csr(make_csr(rsa_key(1024), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT,
                           actor="token:alice")
    events = [e for e in repo.list_audit(pki.db, limit=1000) if e.outcome == "refused"]
    assert events and events[-1].actor == "token:alice" and "RSA-1024" in (events[-1].details or "")


def test_a_csr_whose_subject_does_not_parse_is_an_invalid_request(pki: Authority) -> None:
    """cryptography loads a CSR without parsing its subject; a subject string with a wrong tag only fails when the
    subject is read. That must be the caller's InvalidRequest (found by the fuzzer: REST answered 500)."""
    from pki.batch_issuance import BatchRequest, issue_batch

    der = x509.load_pem_x509_csr(make_csr(p256(), CN="CS001", O="Test CPO")).public_bytes(serialization.Encoding.DER)
    before = repo.count_certificates(pki.db)
    at = der.index(b"\x0c\x05CS001")  # the CN's UTF8String tag -> 0x0d, not a string type
    bad = der[:at] + b"\x0d" + der[at + 1:]
    with pytest.raises(InvalidRequest, match="subject is not a parsable"):
        pki.issue_from_csr(bad, CertKind.STATION_CLIENT)
    [outcome] = issue_batch(pki, [BatchRequest(bad)], CertKind.STATION_CLIENT).items
    assert isinstance(outcome, InvalidRequest)
    assert repo.count_certificates(pki.db) == before  # not even a write-ahead record
