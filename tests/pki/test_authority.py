"""The CA service: write-ahead issuance, crash recovery, unique serials under concurrency."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from pki.authority import Authority
from pki.errors import Conflict, NotFound, PkiError, PolicyViolation
from pki.keys.base import KeyAlgorithm
from pki.profiles import CertKind, Generation
from pki.store import bulk, repo
from pki.store.models import CertStatus
from tests.helpers import make_csr, name, p256


def test_record_is_written_before_the_signature(pki: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    import pki.authority as authority_module

    real_sign = authority_module.sign_certificate

    def spy(template, key):  # type: ignore[no-untyped-def]
        rec = repo.get_certificate_by_serial(pki.db, pki.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP).id or 0,
                                             format(template.serial, "x"))
        assert rec is not None and rec.status == CertStatus.PENDING  # reserved first
        seen.append(rec.serial)
        return real_sign(template, key)

    monkeypatch.setattr(authority_module, "sign_certificate", spy)
    issued = pki.issue_from_csr(make_csr(p256(), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT)
    assert seen == [issued.serial]
    rec = repo.get_certificate(pki.db, issued.record.id or 0)
    assert rec is not None and rec.status == CertStatus.VALID and rec.der is not None
    assert rec.fingerprint_sha256 == issued.certificate.fingerprint(hashes.SHA256()).hex()


def test_signing_failure_leaves_an_aborted_record_not_a_certificate(pki: Authority,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pki.authority as authority_module

    def boom(template, key):  # type: ignore[no-untyped-def]
        raise RuntimeError("token removed")

    monkeypatch.setattr(authority_module, "sign_certificate", boom)
    with pytest.raises(PkiError, match="signing failed"):
        pki.issue_from_csr(make_csr(p256(), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT)
    aborted = repo.list_certificates(pki.db, status=CertStatus.ABORTED)
    assert len(aborted) == 1 and aborted[0].der is None and "RuntimeError" in (aborted[0].failure or "")


def _pending_row(ca_id: int, serial: str, at: dt.datetime) -> dict[str, Any]:
    return {"ca_id": ca_id, "serial": serial, "kind": "station-client", "generation": "ocpp",
            "status": CertStatus.PENDING, "subject": "CN=x", "key_algorithm": "ec-p256", "not_before": at,
            "not_after": at, "owner": None, "actor": "test", "request_id": None, "created_at": at}


def test_crash_recovery_aborts_stale_pending(pki: Authority) -> None:
    ca = pki.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    bulk.reserve_rows(pki.db, [_pending_row(ca.id or 0, "abc", old)])
    assert pki.recover_pending() == 1
    assert repo.list_certificates(pki.db, status=CertStatus.ABORTED)[0].serial == "abc"
    with pytest.raises(NotFound):
        pki.certificate_by_serial("abc")


def test_duplicate_serial_is_refused_by_the_database(pki: Authority) -> None:
    ca = pki.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP)
    now = dt.datetime.now(dt.UTC)
    row = _pending_row(ca.id or 0, "1234", now)
    bulk.reserve_rows(pki.db, [row])
    with pytest.raises(repo.DuplicateSerial):
        bulk.reserve_rows(pki.db, [row])


def test_chain_and_validity(pki: Authority) -> None:
    issued = pki.issue_from_csr(make_csr(p256(), CN="DE*PNC*E1*1", O="T", C="DE", DC="CPO"), CertKind.SECC_LEAF,
                                validity_days=60)
    cert = issued.certificate
    assert [c.subject.rfc4514_string() for c in issued.chain][0].startswith("DC=V2G,C=DE,O=Test CPO,CN=CPO Sub-CA 2")
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=60) < lifetime <= dt.timedelta(days=60, minutes=6)  # backdated ~5 min
    assert issued.chain_pem().count("BEGIN CERTIFICATE") == 3
    with pytest.raises(PolicyViolation, match="validity 9999 days"):
        pki.issue_from_csr(make_csr(p256(), CN="DE*PNC*E1*1", O="T", C="DE", DC="CPO"), CertKind.SECC_LEAF,
                           validity_days=9999)


def test_ca_creation_rules(pki: Authority) -> None:
    with pytest.raises(Conflict):
        pki.create_root("v2g-root", CertKind.V2G_ROOT, Generation.ISO15118_2, name(CN="x"),
                        key_algorithm=KeyAlgorithm.P256)
    with pytest.raises(PolicyViolation, match="must be issued by a cpo-sub1"):
        pki.create_sub_ca("bad", CertKind.CPO_SUB2, "v2g-root", name(CN="x", DC="V2G"))
    with pytest.raises(PolicyViolation, match="not allowed"):
        pki.create_root("r2", CertKind.V2G_ROOT, Generation.ISO15118_2, name(CN="x", DC="V2G"),
                        key_algorithm=KeyAlgorithm.RSA2048)
    with pytest.raises(PolicyViolation, match="created with `pnc ca create`"):
        pki.issue_from_csr(make_csr(p256(), CN="x", DC="V2G"), CertKind.CPO_SUB1)


def test_leaf_never_outlives_its_issuer(pki: Authority) -> None:
    issued = pki.issue_from_csr(make_csr(p256(), CN="SN-1", O="Test CPO"), CertKind.STATION_CLIENT,
                                validity_days=2 * 365)
    assert issued.certificate.not_valid_after_utc <= issued.chain[0].not_valid_after_utc


def test_concurrent_issuance_unique_serials_complete_records(pki: Authority) -> None:
    """8 threads x 500 issuances against one issuer: unique serials, every record complete."""
    csrs = [make_csr(p256(), CN=f"SN-{i}", O="Test CPO") for i in range(64)]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> list[str]:
        serials = []
        for i in range(500):
            try:
                serials.append(pki.issue_from_csr(csrs[(t * 7 + i) % 64], CertKind.STATION_CLIENT,
                                                  actor=f"thread-{t}").serial)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
        return serials

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert not errors, errors[:3]
    serials = [s for r in results for s in r]
    assert len(serials) == 4000 and len(set(serials)) == 4000
    rows = repo.list_certificates(pki.db, kind="station-client", limit=5000)
    assert len(rows) == 4000
    assert all(r.status == CertStatus.VALID and r.der and r.fingerprint_sha256 for r in rows)
    assert repo.list_certificates(pki.db, status=CertStatus.PENDING) == []
