"""Revocation rules: reasons, idempotency, hold/release, CA revocation, audit, CRLs."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pki.authority import Authority, Issued
from pki.crl import CrlService
from pki.errors import Conflict, InvalidRequest, NotFound
from pki.profiles import CertKind
from pki.revocation import RevocationReason, effective_status, release_hold, revoke
from pki.store import ocsp_repo, repo
from tests.helpers import name, p256, pem


def _station(pki: Authority, cn: str = "CS1", issuer: str = "csms-sub") -> Issued:
    return pki.issue_for_public_key(CertKind.STATION_CLIENT, name(CN=cn, O="Test CPO"), p256().public_key(),
                                    issuer=pki.ca(issuer))


@pytest.mark.parametrize("text,expected", [("keyCompromise", RevocationReason.KEY_COMPROMISE),
                                           ("key-compromise", RevocationReason.KEY_COMPROMISE),
                                           ("CACOMPROMISE", RevocationReason.CA_COMPROMISE),
                                           ("remove_from_crl", RevocationReason.REMOVE_FROM_CRL)])
def test_reason_names(text: str, expected: RevocationReason) -> None:
    assert RevocationReason.parse(text) is expected


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        RevocationReason.parse("because")


def test_revoke_is_idempotent_and_audited(pki: Authority) -> None:
    issued = _station(pki)
    first = revoke(pki, issued.record, "superseded", actor="t")
    assert first.changed and first.record.status == "revoked" and first.record.revocation_reason == "superseded"
    again = revoke(pki, issued.record, RevocationReason.SUPERSEDED, actor="t")
    assert not again.changed and again.record.revoked_at == first.record.revoked_at
    other = revoke(pki, issued.record, "cessationOfOperation", actor="t")  # permanent reason is kept
    assert not other.changed and other.record.revocation_reason == "superseded"
    raised = revoke(pki, issued.record, "keyCompromise", actor="t")  # ... except raising it to keyCompromise
    assert raised.changed and raised.record.revocation_reason == "keyCompromise"
    events = [e for e in repo.list_audit(pki.db, limit=1000) if e.action == "certificate.revoke"]
    assert len(events) == 2 and all(issued.serial in (e.target or "") for e in events)
    with pytest.raises(Conflict):
        release_hold(pki, issued.record, actor="t")


def test_hold_release_and_hold_to_permanent(pki: Authority) -> None:
    issued = _station(pki)
    held = revoke(pki, issued.record, "certificateHold", actor="t")
    assert held.record.status == "revoked"
    released = revoke(pki, issued.record, "removeFromCRL", actor="t")
    assert released.changed and released.record.status == "valid" and released.record.revoked_at is None
    assert not release_hold(pki, issued.record, actor="t").changed
    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    revoke(pki, issued.record, "certificateHold", actor="t", at=past)
    final = revoke(pki, issued.record, "keyCompromise", actor="t")
    assert final.changed and final.record.revocation_reason == "keyCompromise"
    assert final.record.revoked_at is not None and final.record.revoked_at.replace(tzinfo=dt.UTC) == past
    with pytest.raises(InvalidRequest):
        revoke(pki, issued.record, "superseded", actor="t", at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))


def test_unknown_certificate_is_not_found(pki: Authority) -> None:
    with pytest.raises(NotFound):
        pki.certificate_by_serial("abcdef1234")


def test_ca_revocation_marks_the_ca_and_key_compromise_reaches_children(pki: Authority) -> None:
    child = _station(pki)
    sub = pki.ca("csms-sub")
    assert sub.certificate_id is not None
    revoke(pki, pki.certificate(sub.certificate_id), "superseded", actor="t")
    assert pki.ca("csms-sub").status == "revoked"
    revoked_cas = ocsp_repo.revoked_ca_ids(pki.db)
    row = ocsp_repo.cert_status_row(pki.db, child.record.ca_id, child.serial)
    assert effective_status(row, revoked_cas).status == "good"  # superseded CA: children keep their own status
    revoke(pki, pki.certificate(sub.certificate_id), "keyCompromise", actor="t")
    status = effective_status(row, ocsp_repo.revoked_ca_ids(pki.db))
    assert status.status == "revoked" and status.reason is RevocationReason.CA_COMPROMISE  # RFC 6960 §2.7
    with pytest.raises(Exception, match="revoked"):
        _station(pki, "CS2")  # a revoked CA cannot issue


def test_crl_numbers_grow_and_openssl_verifies(pki: Authority, tmp_path: Path) -> None:
    crls = CrlService(pki)
    ca = pki.ca("csms-sub")
    first = crls.generate(ca)
    issued = _station(pki)
    revoke(pki, issued.record, "keyCompromise", actor="t", listeners=(crls.on_revocation,))
    latest = ocsp_repo.latest_crl(pki.db, ca.id or 0)
    assert latest is not None and latest.number == first.number + 1 and latest.revoked_count == 1
    crl = x509.load_der_x509_crl(latest.der)
    assert crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == latest.number
    (tmp_path / "crl.der").write_bytes(latest.der)
    (tmp_path / "ca.pem").write_bytes(pem(pki.ca_certificate(ca)))
    res = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-CAfile",
                          str(tmp_path / "ca.pem"), "-verify", "-noout"], capture_output=True, text=True, check=False)
    assert "verify OK" in res.stderr + res.stdout


def test_crl_maintenance_signs_missing_and_due_crls_only(pki: Authority) -> None:
    """The maintenance loop (injected clock): every CA gets a CRL, nothing is re-signed while fresh, and each CRL is
    re-signed once it is within ``regenerate_before`` of nextUpdate — with a higher number; current() does the same
    on demand, so a served CRL never lapses."""
    from pki.clock import FixedClock

    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    pki.clock = clock
    crls = CrlService(pki, validity=dt.timedelta(days=7), regenerate_before=dt.timedelta(days=2))
    online = [ca for ca in pki.cas() if not ca.external_key and ca.certificate_id is not None]
    assert crls.maintain() == len(online) > 0
    assert crls.maintain() == 0  # fresh: nothing to do
    ca = pki.ca("csms-sub")
    first = crls.current(ca)
    clock.advance(dt.timedelta(days=4, hours=23))  # 2 d 1 h left: not yet due
    assert crls.maintain() == 0 and crls.current(ca).number == first.number
    clock.advance(dt.timedelta(hours=2))  # 1 d 23 h left: due
    second = crls.current(ca)  # on demand, before the loop ran
    assert second.number == first.number + 1 and dt.timedelta(days=7) == second.next_update - second.this_update
    assert crls.maintain() == len(online) - 1  # every other CA, but not the one current() just renewed
    latest = x509.load_der_x509_crl(ocsp_repo.latest_crl(pki.db, ca.id or 0).der)  # type: ignore[union-attr]
    assert latest.next_update_utc is not None and latest.next_update_utc > clock.now() + dt.timedelta(days=6)
