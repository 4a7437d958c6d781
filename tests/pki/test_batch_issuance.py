"""Bulk issuance: one outcome per CSR, the write-ahead → sign → finalise guarantees, chunks that fail alone."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes

import pki.batch_issuance as batch_module
from pki.audit import AuditLog
from pki.authority import Authority
from pki.batch_issuance import BatchIssued, BatchRequest, issue_batch
from pki.csr_policy import SubjectExpectation
from pki.errors import InvalidRequest, NotFound, PkiError, PolicyViolation, StorageUnavailable
from pki.keys.base import KeyManager
from pki.profiles import CertKind, Generation
from pki.store import bulk, repo
from pki.store.models import CertStatus
from tests.helpers import make_csr, openssl_verify, p256

KIND = CertKind.STATION_CLIENT


def _csrs(n: int, prefix: str = "SN") -> list[BatchRequest]:
    return [BatchRequest(make_csr(p256(), CN=f"{prefix}-{i}", O="Test CPO"), owner=f"{prefix}-{i}") for i in range(n)]


def _issued(items: list[BatchIssued | PkiError]) -> list[BatchIssued]:
    return [i for i in items if isinstance(i, BatchIssued)]


def test_every_certificate_is_recorded_valid_audited_and_verifies_with_openssl(pki: Authority,
                                                                                keys: KeyManager) -> None:
    result = issue_batch(pki, _csrs(7), KIND, actor="factory", chunk=3)  # three chunks: 3 + 3 + 1
    assert result.issued == 7
    root = pki.ca_certificate(pki.root_of(result.issuer))
    for item in _issued(result.items):
        rec = repo.get_certificate(pki.db, item.id)
        assert rec is not None and rec.status == CertStatus.VALID and rec.serial == item.serial
        assert rec.fingerprint_sha256 == item.certificate.fingerprint(hashes.SHA256()).hex()
        assert rec.owner == item.certificate.subject.rfc4514_string().split("CN=")[1].split(",")[0]
        assert rec.actor == "factory"
        openssl_verify(item.certificate, list(result.chain), root)
    events = [e for e in repo.list_audit(pki.db, limit=1000, action="certificate.issue")
              if e.actor == "factory"]
    assert sorted(e.target or "" for e in events) == sorted(f"{result.issuer.name}/{i.serial}"
                                                            for i in _issued(result.items))
    assert AuditLog(pki.db, keys).verify().ok


def test_a_batch_certificate_has_the_same_profile_as_a_single_one(pki: Authority) -> None:
    single = pki.issue_from_csr(make_csr(p256(), CN="SN-single", O="Test CPO"), KIND).certificate
    bulk_cert = _issued(issue_batch(pki, _csrs(1), KIND).items)[0].certificate
    assert [(e.oid, e.critical, e.value) for e in bulk_cert.extensions if e.oid.dotted_string != "2.5.29.14"] == \
        [(e.oid, e.critical, e.value) for e in single.extensions if e.oid.dotted_string != "2.5.29.14"]
    assert bulk_cert.issuer == single.issuer
    assert bulk_cert.not_valid_after_utc - bulk_cert.not_valid_before_utc == \
        single.not_valid_after_utc - single.not_valid_before_utc


def test_refused_and_unparsable_csrs_are_their_own_outcome(pki: Authority) -> None:
    requests = [
        BatchRequest(make_csr(p256(), CN="SN-1", O="Test CPO")),
        BatchRequest(make_csr(p256(), CN="SN-2", O="Other CPO"), expect=SubjectExpectation(organization="Test CPO")),
        BatchRequest(b"not a CSR"),
        BatchRequest(make_csr(p256(), CN="SN-4", O="Test CPO")),
    ]
    items = issue_batch(pki, requests, KIND, actor="factory").items
    assert isinstance(items[0], BatchIssued) and isinstance(items[3], BatchIssued)
    assert isinstance(items[1], PolicyViolation) and "Other CPO" in items[1].message
    assert isinstance(items[2], InvalidRequest)
    refused = [e for e in repo.list_audit(pki.db, limit=1000) if e.outcome == "refused" and e.actor == "factory"]
    assert len(refused) == 1 and "O=Other CPO,CN=SN-2" in json.loads(refused[0].details or "{}")["subject"]
    assert repo.count_certificates(pki.db, status=CertStatus.PENDING) == 0


def test_what_concerns_the_whole_batch_raises(pki: Authority) -> None:
    with pytest.raises(PolicyViolation, match="pnc ca create"):
        issue_batch(pki, _csrs(1), CertKind.CPO_SUB1)
    with pytest.raises(NotFound):
        issue_batch(pki, _csrs(1), KIND, issuer="no-such-ca")
    with pytest.raises(PolicyViolation, match="validity"):
        issue_batch(pki, _csrs(1), KIND, validity_days=100_000)


def test_a_taken_serial_draws_fresh_serials_for_the_chunk(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = pki.issue_from_csr(make_csr(p256(), CN="SN-0", O="Test CPO"), KIND)
    real = batch_module.new_serial
    draws = iter([int(taken.serial, 16)])

    def serial() -> int:
        return next(draws, None) or real()

    monkeypatch.setattr(batch_module, "new_serial", serial)
    result = issue_batch(pki, _csrs(3), KIND)
    assert result.issued == 3 and taken.serial not in {i.serial for i in _issued(result.items)}
    assert repo.count_certificates(pki.db, status=CertStatus.VALID) == repo.count_certificates(pki.db) \
        - repo.count_certificates(pki.db, status=CertStatus.PENDING)


def test_a_signing_failure_aborts_that_record_only(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_module.sign_certificate

    def flaky(template, key):  # type: ignore[no-untyped-def]
        if "SN-1" in template.subject.rfc4514_string():
            raise RuntimeError("HSM session lost")
        return real(template, key)

    monkeypatch.setattr(batch_module, "sign_certificate", flaky)
    items = issue_batch(pki, _csrs(3), KIND).items
    assert isinstance(items[1], PkiError) and items[1].code == "SigningFailed"
    assert "HSM" not in items[1].message  # the driver's text stays in the server, not the answer
    assert [isinstance(i, BatchIssued) for i in items] == [True, False, True]
    aborted = repo.list_certificates(pki.db, status=CertStatus.ABORTED)
    assert len(aborted) == 1 and aborted[0].subject.endswith("CN=SN-1") and aborted[0].der is None


def test_a_failed_chunk_fails_alone_and_releases_no_certificate(pki: Authority,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = bulk.finalise
    calls = []

    def second_fails(db, changes, audit):  # type: ignore[no-untyped-def]
        calls.append(len(changes))
        if len(calls) == 2:
            raise StorageUnavailable("the database did not accept the finalisation (OperationalError)")
        return real(db, changes, audit)

    monkeypatch.setattr(bulk, "finalise", second_fails)
    before = repo.count_certificates(pki.db, status=CertStatus.VALID)
    items = issue_batch(pki, _csrs(5), KIND, chunk=2).items
    assert [type(i).__name__ for i in items] == ["BatchIssued", "BatchIssued", "StorageUnavailable",
                                                 "StorageUnavailable", "BatchIssued"]
    assert repo.count_certificates(pki.db, status=CertStatus.VALID) == before + 3
    assert repo.count_certificates(pki.db, status=CertStatus.ABORTED) == 2  # none left pending, none valid


def test_the_database_refusing_a_write_is_storage_unavailable(pki: Authority) -> None:
    ids = bulk.reserve(pki.db, [])
    assert ids == []
    with pytest.raises(StorageUnavailable, match="no longer pending"):
        bulk.finalise(pki.db, [{"record_id": 10**6, "der": b"x", "fingerprint_sha256": "00" * 32,
                                "issued_at": pki.clock.now()}], [])


def test_a_record_no_longer_pending_in_a_later_slice_keeps_the_whole_finalisation_out(pki: Authority) -> None:
    """The finalising UPDATE runs in slices of bulk._UPDATE_SLICE; one aborted record in the last slice still rolls
    back the slices before it, so none of the batch becomes valid."""
    ca = pki.issuer_for(KIND, Generation.OCPP)
    now = pki.clock.now()
    n = bulk._UPDATE_SLICE * 2 + 1
    rows = [{"ca_id": ca.id, "serial": f"{0xABC000 + i:x}", "kind": KIND.value, "generation": "ocpp",
             "status": CertStatus.PENDING, "subject": "CN=x", "key_algorithm": "ec-p256", "not_before": now,
             "not_after": now, "owner": None, "actor": "test", "request_id": None, "created_at": now}
            for i in range(n)]
    ids = bulk.reserve(pki.db, rows)
    bulk.abort(pki.db, [ids[-1]], "aborted by recovery meanwhile")
    changes = [{"record_id": i, "der": b"x", "fingerprint_sha256": f"{i:064x}", "issued_at": now} for i in ids]
    with pytest.raises(StorageUnavailable, match=f"1 of {n} reserved records were no longer pending"):
        bulk.finalise(pki.db, changes, [])
    assert {repo.get_certificate(pki.db, i).status for i in ids[:-1]} == {CertStatus.PENDING}  # type: ignore[union-attr]
    bulk.finalise(pki.db, changes[:-1], [])  # the rest, without the aborted one, goes through
    assert {repo.get_certificate(pki.db, i).status for i in ids[:-1]} == {CertStatus.VALID}  # type: ignore[union-attr]


def test_observers_hear_every_item(pki: Authority) -> None:
    heard: list[tuple[str, str]] = []
    pki.observers.append(lambda kind, outcome, seconds: heard.append((kind, outcome)))
    issue_batch(pki, [*_csrs(2), BatchRequest(b"junk")], KIND)
    assert sorted(heard) == [(KIND.value, "invalid"), (KIND.value, "issued"), (KIND.value, "issued")]


def test_the_ocpp_generation_default_and_a_named_issuer(pki: Authority) -> None:
    issuer = pki.issuer_for(KIND, Generation.OCPP)
    result = issue_batch(pki, _csrs(2), KIND, issuer=issuer.name)
    assert result.issuer.id == issuer.id and result.issued == 2
    assert result.chain_pem().count("BEGIN CERTIFICATE") == len(result.chain)


def test_an_unexpected_error_on_one_csr_is_that_items_outcome(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    real = batch_module.csr_policy.load_csr

    def choke(data):  # type: ignore[no-untyped-def]
        if b"junk-that-crashes" in (data if isinstance(data, bytes) else data.encode()):
            raise ValueError("parser bug")
        return real(data)

    monkeypatch.setattr(batch_module.csr_policy, "load_csr", choke)
    items = issue_batch(pki, [*_csrs(1), BatchRequest(b"junk-that-crashes"), *_csrs(1, "SN-B")], KIND).items
    assert [type(i).__name__ for i in items] == ["BatchIssued", "InvalidRequest", "BatchIssued"]
    assert "ValueError" in items[1].message and "parser bug" not in items[1].message  # type: ignore[union-attr]
