"""Station certificate lifecycle: supersede after SP3 reconnect, revoke after grace, surface rejections."""

from __future__ import annotations

import datetime as dt

from pki.authority import Authority
from pki.clock import FixedClock
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind
from pki.store import repo
from pki.store.models import StationCertState
from tests.helpers import make_csr, p256


def _issue(pki: Authority, sid: str) -> tuple[int, object]:
    issued = pki.issue_from_csr(make_csr(p256(), CN=sid, O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner=sid)
    assert issued.record.id is not None
    return issued.record.id, issued.certificate


def test_supersede_only_after_reconnect_then_revoke_after_grace(pki: Authority) -> None:
    clock = FixedClock()
    pki.clock = clock
    life = StationLifecycle(pki.db, clock, grace=dt.timedelta(hours=6))
    old_id, old_cert = _issue(pki, "CS1")
    life.station_connected("CS1", old_cert)  # type: ignore[arg-type]
    new_id, new_cert = _issue(pki, "CS1")
    life.record_issued("CS1", new_id, "ChargingStationCertificate")
    row = life.certificate_signed_result("CS1", new_id, "Accepted")
    assert row.state == StationCertState.ACCEPTED
    # accepted but not yet connected with it: the old certificate is still the one in use (A02.FR.28 fallback)
    assert [r.certificate_id for r in life.in_use("CS1")] == [old_id]
    assert life.revoke_due() == 0
    life.station_connected("CS1", new_cert)  # type: ignore[arg-type]
    assert [r.certificate_id for r in life.in_use("CS1")] == [new_id]
    clock.advance(dt.timedelta(hours=5))
    assert life.revoke_due() == 0
    assert repo.get_certificate(pki.db, old_id).status == "valid"  # type: ignore[union-attr]
    clock.advance(dt.timedelta(hours=2))
    assert life.revoke_due() == 1
    old = repo.get_certificate(pki.db, old_id)
    assert old is not None and old.status == "revoked" and old.revocation_reason == "superseded"
    assert repo.get_certificate(pki.db, new_id).status == "valid"  # type: ignore[union-attr]
    assert life.revoke_due() == 0  # idempotent
    # reconnecting with the old certificate later never resurrects it
    assert life.station_connected("CS1", old_cert).state == StationCertState.REVOKED  # type: ignore[arg-type, union-attr]


def test_rejections_are_surfaced(pki: Authority) -> None:
    life = StationLifecycle(pki.db, pki.clock)
    a_id, _ = _issue(pki, "CS2")
    life.record_issued("CS2", a_id, "ChargingStationCertificate")
    row = life.certificate_signed_result("CS2", a_id, "Rejected", {"reasonCode": "InvalidCertificateChain"})
    assert row.state == StationCertState.REJECTED and "InvalidCertificateChain" in (row.reason or "")
    b_id, _ = _issue(pki, "CS2")
    life.record_issued("CS2", b_id, "ChargingStationCertificate")
    life.certificate_signed_result("CS2", b_id, "Accepted")
    row2 = life.security_event("CS2", "InvalidChargingStationCertificate", "validity period")
    assert row2 is not None and row2.certificate_id == b_id and row2.state == StationCertState.REJECTED
    assert life.security_event("CS2", "StartupOfTheDevice") is None  # unrelated events are ignored
    found = life.rejections("CS2")
    assert {e["action"] for e in found} == {"station.certificate_signed.rejected", "station.security_event"}
    # a rejected certificate never supersedes the one in use
    assert life.in_use("CS2") == []
    # event for a station with nothing pending is still recorded
    assert life.security_event("CS9", "InvalidChargingStationCertificate") is None
    assert life.rejections("CS9")[0]["station"] == "CS9"


def test_foreign_certificate_is_ignored(pki: Authority) -> None:
    life = StationLifecycle(pki.db, pki.clock)
    _, cert = _issue(pki, "CS3")
    assert life.station_connected("CS4", cert) is None  # type: ignore[arg-type]
