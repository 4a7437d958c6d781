"""OcspService: pre-signing, refresh, signer renewal, revocation latency, sharing between instances, DB outage."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki.authority import Authority, Issued
from pki.clock import FixedClock
from pki.hashdata import CertificateHashData, HashAlgorithm, certificate_hash_data
from pki.keys.base import KeyManager
from pki.ocsp import OcspPolicy, OcspService, parse_request
from pki.ocsp.request import MalformedRequest
from pki.profiles import CertKind
from pki.revocation import revoke
from pki.store import ocsp_repo
from pki.store.repo import Database
from tests.conftest import make_hierarchies
from tests.helpers import name, p256


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def auth(db: Database, keys: KeyManager, clock: FixedClock) -> Authority:
    a = Authority(db, keys, public_url="http://127.0.0.1:8080", clock=clock)
    make_hierarchies(a)
    return a


def _leaf(a: Authority, cn: str = "CS1") -> Issued:
    return a.issue_for_public_key(CertKind.STATION_CLIENT, name(CN=cn, O="Test CPO"), p256().public_key(),
                                  issuer=a.ca("csms-sub"))


def _request(issued: Issued, a: Authority, alg: hashes.HashAlgorithm = hashes.SHA1(), nonce: bytes | None = None
             ) -> bytes:
    issuer = a.ca_certificate(a.ca_by_id(issued.record.ca_id))
    b = ocsp.OCSPRequestBuilder().add_certificate(issued.certificate, issuer, alg)
    if nonce:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def _status(der: bytes) -> ocsp.OCSPCertStatus:
    return ocsp.load_der_ocsp_response(der).certificate_status


def test_presigned_responses_follow_rfc5019(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    stats = svc.refresh()
    assert stats.signers_issued >= 10 and stats.signed >= 2
    for alg in (hashes.SHA1(), hashes.SHA256()):
        hit = svc.fast(_request(leaf, auth, alg))
        assert hit is not None and hit.status == "good"
        resp = ocsp.load_der_ocsp_response(hit.der)
        assert resp.responder_key_hash is not None and resp.responder_name is None  # byKey
        assert resp.next_update_utc is not None and resp.this_update_utc.microsecond == 0
        signer = resp.certificates[0]
        assert signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.OCSP_SIGNING])
        assert signer.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.5"))
        assert signer.issuer == auth.ca_certificate(auth.ca("csms-sub")).subject
        raw = asn1_ocsp.OCSPResponse.load(hit.der)["response_bytes"]["response"].parsed["tbs_response_data"]
        for field in ("produced_at",):
            assert b"." not in raw[field].contents  # GeneralizedTime without fractional seconds
        single = raw["responses"][0]
        assert b"." not in single["this_update"].contents and b"." not in single["next_update"].contents
    assert svc.refresh().signed == 0  # nothing due


def test_refresh_resigns_old_responses_and_renews_signers(auth: Authority, clock: FixedClock) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    svc.refresh()
    first = svc.fast(_request(leaf, auth))
    assert first is not None
    clock.advance(dt.timedelta(days=1, minutes=1))
    assert svc.refresh().signed >= 2
    second = svc.fast(_request(leaf, auth))
    assert second is not None and second.this_update > first.this_update
    old_signer = ocsp_repo.newest_signers(auth.db)[auth.ca("csms-sub").id or 0]
    clock.advance(dt.timedelta(days=19))  # signer (30 d) now has < 12 d left: renewed, responses re-signed
    stats = svc.refresh()
    new_signer = ocsp_repo.newest_signers(auth.db)[auth.ca("csms-sub").id or 0]
    assert new_signer.id != old_signer.id and stats.signers_issued >= 1
    third = svc.fast(_request(leaf, auth))
    assert third is not None
    cert = ocsp.load_der_ocsp_response(third.der).certificates[0]
    assert cert.not_valid_after_utc >= third.next_update  # no response outlives its signer


def test_revocation_replaces_the_response_at_once(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    svc.refresh()
    req = _request(leaf, auth, hashes.SHA256())
    assert svc.fast(req).status == "good" and svc.fast(req) is svc.fast(req)  # type: ignore[union-attr]
    started = time.perf_counter()  # the repeated request's shortcut (request bytes -> key) must see the change
    revoke(auth, leaf.record, "keyCompromise", actor="t", listeners=(svc.on_revocation,))
    hit = svc.fast(req)
    elapsed = time.perf_counter() - started
    assert hit is not None and hit.status == "revoked" and elapsed < 1.0
    resp = ocsp.load_der_ocsp_response(hit.der)
    assert resp.revocation_reason is x509.ReasonFlags.key_compromise and resp.revocation_time_utc is not None


def test_other_instance_sees_the_revocation_through_the_table(auth: Authority) -> None:
    leaf = _leaf(auth)
    a, b = OcspService(auth), OcspService(auth)
    a.refresh()
    b.sync_from_store()
    req = _request(leaf, auth)
    hit = b.fast(req)
    assert hit is not None and hit.status == "good"
    revoke(auth, leaf.record, "superseded", actor="cli", listeners=(a.on_revocation,))
    b.sync_from_store()
    hit = b.fast(req)
    assert hit is not None and hit.status == "revoked"
    # without any listener (e.g. a bare revocation): the row is stale, B drops it and re-reads the database
    other = _leaf(auth, "CS2")
    a.refresh()
    b.sync_from_store()
    assert b.fast(_request(other, auth)) is not None
    revoke(auth, other.record, "keyCompromise", actor="t")
    b.sync_from_store()
    assert b.fast(_request(other, auth)) is None
    assert _status(b.respond(_request(other, auth)).der) is ocsp.OCSPCertStatus.REVOKED


def test_database_down_serves_valid_presigned_but_never_guesses(auth: Authority) -> None:
    cached, uncached = _leaf(auth, "CS1"), _leaf(auth, "CS2")
    svc = OcspService(auth)
    svc.refresh()
    svc._memory = {k: v for k, v in svc._memory.items() if k[1] != uncached.serial}
    req_cached, req_uncached = _request(cached, auth), _request(uncached, auth)
    auth.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    try:
        answer = svc.respond(req_cached)
        assert answer.successful and _status(answer.der) is ocsp.OCSPCertStatus.GOOD
        down = svc.respond(req_uncached)
        assert ocsp.load_der_ocsp_response(down.der).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    finally:
        auth.db.dispose()


def test_nonce_is_echoed_and_unknown_serials_answer_unknown(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    answer = svc.respond(_request(leaf, auth, nonce=b"0123456789abcdef"))
    resp = ocsp.load_der_ocsp_response(answer.der)
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert answer.cached is None  # request-specific: never cached
    hd = certificate_hash_data(leaf.certificate, auth.ca_certificate(auth.ca("csms-sub")))
    ghost = CertificateHashData(hd.hash_algorithm, hd.issuer_name_hash, hd.issuer_key_hash, "abc123")
    assert _status(svc.respond_to_hash_data(ghost)) is ocsp.OCSPCertStatus.UNKNOWN


def test_ocpp_hash_data_sha256_384_512(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    issuer = auth.ca_certificate(auth.ca("csms-sub"))
    for alg in (HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512):
        ocpp = certificate_hash_data(leaf.certificate, issuer, alg).to_ocpp()
        ocpp["issuerNameHash"] = ocpp["issuerNameHash"].upper()
        der = svc.respond_to_hash_data(CertificateHashData.from_ocpp(ocpp))
        resp = ocsp.load_der_ocsp_response(der)
        assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD and resp.serial_number == leaf.certificate.serial_number
        assert resp.hash_algorithm.name == alg.value
    foreign = CertificateHashData(HashAlgorithm.SHA256, "00" * 32, "11" * 32, "1")
    resp = ocsp.load_der_ocsp_response(svc.respond_to_hash_data(foreign))
    assert resp.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_several_certids_built_with_asn1crypto(auth: Authority) -> None:
    a, b = _leaf(auth, "CS1"), _leaf(auth, "CS2")
    revoke(auth, b.record, "affiliationChanged", actor="t")
    svc = OcspService(auth)
    one = asn1_ocsp.OCSPRequest.load(_request(a, auth))["tbs_request"]["request_list"][0]
    two = asn1_ocsp.OCSPRequest.load(_request(b, auth))["tbs_request"]["request_list"][0]
    foreign = asn1_ocsp.Request({"req_cert": {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": b"\0" * 20,
                                              "issuer_key_hash": b"\1" * 20, "serial_number": 5}})
    req = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [one, two, foreign]}}).dump()
    assert len(parse_request(req).cert_ids) == 3
    parsed = asn1_ocsp.OCSPResponse.load(svc.respond(req).der)
    singles = parsed["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    assert [s["cert_status"].name for s in singles] == ["good", "revoked", "unknown"]
    assert singles[1]["cert_status"].chosen["revocation_reason"].native == "affiliation_changed"


@pytest.mark.parametrize("junk", [b"", b"\x30\x03\x02\x01\x01", b"\x30\x80", b"\xff" * 40])
def test_garbage_is_malformed(junk: bytes, auth: Authority) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(junk)
    resp = ocsp.load_der_ocsp_response(OcspService(auth).respond(junk).der)
    assert resp.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_sign_with_ca_key_mode(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth, OcspPolicy(sign_with_ca_key=True))
    resp = ocsp.load_der_ocsp_response(svc.respond(_request(leaf, auth)).der)
    assert resp.certificates == [] and resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    ca_cert = auth.ca_certificate(auth.ca("csms-sub"))
    ca_cert.public_key().verify(resp.signature, resp.tbs_response_bytes,  # type: ignore[call-arg,union-attr]
                                __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ECDSA"]
                                           ).ECDSA(hashes.SHA256()))


def test_children_of_a_compromised_ca_answer_revoked(auth: Authority) -> None:
    leaf = _leaf(auth)
    svc = OcspService(auth)
    svc.refresh()
    sub = auth.ca("csms-sub")
    assert sub.certificate_id is not None
    assert svc.fast(_request(leaf, auth)) is not None  # remembered by its request bytes too
    revoke(auth, auth.certificate(sub.certificate_id), "keyCompromise", actor="t", listeners=(svc.on_revocation,))
    assert svc.fast(_request(leaf, auth)) is None  # dropped at once
    resp = ocsp.load_der_ocsp_response(svc.respond(_request(leaf, auth)).der)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.ca_compromise


def test_refresh_never_overwrites_a_concurrent_revocation(auth: Authority, clock: FixedClock,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The refresher reads statuses, then signs; a revocation committed in between must win (no wrong "good")."""
    leaf = _leaf(auth)
    svc = OcspService(auth)
    svc.refresh()
    clock.advance(dt.timedelta(days=2))  # everything is due for re-signing
    original = ocsp_repo.cert_status_rows

    def read_then_revoke(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = original(*args, **kwargs)
        clock.advance(dt.timedelta(seconds=1))
        revoke(auth, leaf.record, "keyCompromise", actor="t", listeners=(svc.on_revocation,))
        return rows

    monkeypatch.setattr(ocsp_repo, "cert_status_rows", read_then_revoke)
    svc.refresh()  # signs "good" for the leaf from its stale snapshot
    monkeypatch.setattr(ocsp_repo, "cert_status_rows", original)
    for alg in (hashes.SHA1(), hashes.SHA256()):
        hit = svc.fast(_request(leaf, auth, alg))
        assert hit is not None and hit.status == "revoked"
        row = ocsp_repo.get_response(auth.db, leaf.record.ca_id, leaf.serial, alg.name)
        assert row is not None and row.cert_status == "revoked"
    other = OcspService(auth)
    other.sync_from_store()
    hit = other.fast(_request(leaf, auth))
    assert hit is not None and hit.status == "revoked"


def test_last_modified_is_the_signed_produced_at_on_every_path(db: Database, keys: KeyManager) -> None:
    """RFC 5019 §6.2: Last-Modified = producedAt. The signature stamps producedAt with the wall clock, so a
    service clock an hour off (or a second boundary between "now" and the signature) must not leak into the
    header: pre-signed, signed on a miss, re-signed on revocation, and reloaded from the table."""
    from email.utils import format_datetime

    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1))
    auth = Authority(db, keys, public_url="http://127.0.0.1:8080", clock=clock)
    make_hierarchies(auth)
    presigned = _leaf(auth, "CS1")
    svc = OcspService(auth)
    svc.refresh()
    missed = _leaf(auth, "CS2")  # issued after the pre-signing pass: its first request is signed on demand

    def check(entry: object) -> None:
        assert entry is not None
        produced = ocsp.load_der_ocsp_response(entry.der).produced_at_utc  # type: ignore[attr-defined]
        assert entry.last_modified == format_datetime(produced, usegmt=True)  # type: ignore[attr-defined]
        assert entry.produced_at == produced  # type: ignore[attr-defined]

    check(svc.fast(_request(presigned, auth)))
    assert svc.fast(_request(missed, auth, hashes.SHA256())) is None
    answer = svc.respond(_request(missed, auth, hashes.SHA256()))
    check(answer.cached)
    revoke(auth, presigned.record, "superseded", actor="t", listeners=(svc.on_revocation,))
    check(svc.fast(_request(presigned, auth)))
    other = OcspService(auth)  # another instance: loads the stored rows
    other.load()
    other.sync_from_store()
    check(other.fast(_request(missed, auth, hashes.SHA256())))
