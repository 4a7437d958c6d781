"""Station certificate lifecycle as OCPP A02/A03 expects it.

A station keeps its old client certificate until it has connected with the new one (A02.FR.08/.10: after
CertificateSigned is accepted it reconnects with the new certificate and then discards the unused one). Only then
is the old certificate *superseded*; it is revoked (reason ``superseded``) after a grace period, so a station
that falls back to the old certificate (A02.FR.28) is not locked out in the meantime. A V2G (SECC) certificate has
no reconnect: an accepted CertificateSigned supersedes the previous one.

The OCPP endpoint calls these functions:

* :func:`record_issued` after signing a SignCertificate CSR for a station,
* :func:`certificate_signed_result` with the station's CertificateSigned answer,
* :func:`station_connected` when a station completes a TLS (security profile 3) connection,
* :func:`security_event` for every SecurityEventNotification,
* :func:`revoke_due` periodically (the expiry watch does it on every tick).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from pki.clock import Clock, SystemClock, utc
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import Certificate, CertStatus, StationCertificate, StationCertState

log = logging.getLogger("pnc.lifecycle")

DEFAULT_GRACE = dt.timedelta(hours=24)
CHARGING_STATION = "ChargingStationCertificate"
V2G = "V2GCertificate"
# Security events that mean "the station threw away the certificate we sent" (A02.FR.07, errata A02.FR.29).
REJECTION_EVENTS = frozenset({"InvalidChargingStationCertificate", "InvalidChargePointCertificate",
                              "DiscardedRenewedClientCertificate"})

Revoker = Callable[[Certificate, str, str], None]
"""``revoker(record, reason, actor)``: revoke a certificate. The default marks the record revoked with an audit
event; deployments with the revocation service (OCSP/CRL) bind its revoke function instead."""


def default_revoker(db: repo.Database, clock: Clock) -> Revoker:
    def _revoke(record: Certificate, reason: str, actor: str) -> None:
        assert record.id is not None
        ca = repo.get_ca(db, record.ca_id)
        audit = repo.audit_event(actor, "certificate.revoke", "success",
                                 target=f"{ca.name if ca else record.ca_id}/{record.serial}",
                                 details={"reason": reason, "owner": record.owner, "kind": record.kind})
        lrepo.revoke_certificate(db, record.id, reason, clock.now(), audit)

    return _revoke


@dataclass
class StationLifecycle:
    db: repo.Database
    clock: Clock = field(default_factory=SystemClock)
    grace: dt.timedelta = DEFAULT_GRACE
    revoker: Revoker | None = None

    def __post_init__(self) -> None:
        if self.revoker is None:
            self.revoker = default_revoker(self.db, self.clock)

    # --- events from the OCPP endpoint ------------------------------------------------------------------

    def record_issued(self, station_id: str, certificate_id: int, certificate_type: str) -> StationCertificate:
        """Remember that ``certificate_id`` was signed for ``station_id`` (sent in CertificateSigned)."""
        return lrepo.upsert_station_certificate(self.db, station_id, certificate_id, _norm_type(certificate_type),
                                                self.clock.now())

    def certificate_signed_result(self, station_id: str, certificate_id: int, status: str,
                                  status_info: dict[str, str] | None = None) -> StationCertificate:
        """The station's CertificateSignedResponse. Rejected is surfaced (audit + warning log)."""
        row = self._row(station_id, certificate_id)
        now = self.clock.now()
        if status == "Accepted":
            row = lrepo.update_station_certificate(self.db, _rid(row), state=StationCertState.ACCEPTED,
                                                   accepted_at=now)
            if row.certificate_type == V2G:
                # no reconnect for the SECC certificate: the station uses the new one for the next EV session
                row = self._put_in_use(row, now)
            return row
        reason = f"CertificateSigned {status}"
        if status_info:
            reason += f" ({status_info.get('reasonCode', '')}: {status_info.get('additionalInfo', '')})"
        return self._reject(row, reason, "station.certificate_signed.rejected")

    def station_connected(self, station_id: str, client_certificate: x509.Certificate) -> StationCertificate | None:
        """A station connected with ``client_certificate`` (SP3). Marks it in use and supersedes older ones."""
        rec = repo.record_of(self.db, client_certificate)
        if rec is None or rec.id is None or rec.owner not in (None, station_id):
            return None
        row = lrepo.get_station_certificate(self.db, rec.id)
        if row is None:
            row = lrepo.upsert_station_certificate(self.db, station_id, rec.id, CHARGING_STATION, self.clock.now())
        if row.state in (StationCertState.IN_USE, StationCertState.SUPERSEDED, StationCertState.REVOKED):
            return row
        return self._put_in_use(row, self.clock.now())

    def security_event(self, station_id: str, event_type: str, tech_info: str | None = None,
                       timestamp: dt.datetime | None = None) -> StationCertificate | None:
        """SecurityEventNotification. Rejection events mark the newest unconfirmed certificate rejected."""
        at = timestamp or self.clock.now()
        if event_type not in REJECTION_EVENTS:
            return None
        log.warning("station %s reported %s: %s", station_id, event_type, tech_info or "")
        candidates = lrepo.station_certificates(self.db, station_id, CHARGING_STATION,
                                                states=[StationCertState.ISSUED, StationCertState.ACCEPTED])
        if not candidates:
            repo.add_audit(self.db, repo.audit_event(f"station:{station_id}", "station.security_event", "warning",
                                                     target=station_id,
                                                     details={"type": event_type, "techInfo": tech_info,
                                                              "at": at.isoformat()}))
            return None
        return self._reject(candidates[-1], f"{event_type}: {tech_info or ''}".strip(), "station.security_event",
                            extra={"type": event_type, "techInfo": tech_info, "at": at.isoformat()})

    def revoke_due(self, actor: str = "system:lifecycle") -> int:
        """Revoke superseded certificates whose grace period has ended (reason superseded)."""
        now = self.clock.now()
        done = 0
        assert self.revoker is not None
        for row in lrepo.superseded_due(self.db, now):
            rec = repo.get_certificate(self.db, row.certificate_id)
            if rec is not None and rec.status == CertStatus.VALID:
                self.revoker(rec, "superseded", actor)
                done += 1
            lrepo.update_station_certificate(self.db, _rid(row), state=StationCertState.REVOKED, revoked_at=now)
        return done

    # --- queries ------------------------------------------------------------------------------------------

    def in_use(self, station_id: str, certificate_type: str = CHARGING_STATION) -> list[StationCertificate]:
        return lrepo.station_certificates(self.db, station_id, _norm_type(certificate_type),
                                          states=[StationCertState.IN_USE])

    def rejections(self, station_id: str | None = None, limit: int = 100) -> list[dict[str, str | None]]:
        """Rejected CertificateSigned and rejection security events, newest first (for REST/CLI surfacing)."""
        out = []
        for prefix in ("station.certificate_signed.rejected", "station.security_event"):
            for ev in lrepo.audit_events(self.db, prefix, target=station_id, limit=limit):
                out.append({"at": utc(ev.at).isoformat(), "station": ev.target, "action": ev.action,
                            "details": ev.details})
        return sorted(out, key=lambda e: e["at"] or "", reverse=True)[:limit]

    # --- internals ----------------------------------------------------------------------------------------

    def _row(self, station_id: str, certificate_id: int) -> StationCertificate:
        row = lrepo.get_station_certificate(self.db, certificate_id)
        if row is None:
            rec = repo.get_certificate(self.db, certificate_id)
            cert_type = V2G if rec is not None and rec.kind == "secc-leaf" else CHARGING_STATION
            row = lrepo.upsert_station_certificate(self.db, station_id, certificate_id, cert_type, self.clock.now())
        return row

    def _put_in_use(self, row: StationCertificate, now: dt.datetime) -> StationCertificate:
        row = lrepo.update_station_certificate(self.db, _rid(row), state=StationCertState.IN_USE, in_use_at=now)
        for other in lrepo.station_certificates(self.db, row.station_id, row.certificate_type,
                                                states=[StationCertState.IN_USE, StationCertState.ACCEPTED,
                                                        StationCertState.ISSUED]):
            if other.id == row.id or other.certificate_id > row.certificate_id:
                continue  # only older certificates are superseded by this one
            lrepo.update_station_certificate(self.db, _rid(other), state=StationCertState.SUPERSEDED,
                                             superseded_at=now, revoke_after=now + self.grace)
            repo.add_audit(self.db, repo.audit_event("system:lifecycle", "station.certificate.superseded", "success",
                                                     target=row.station_id,
                                                     details={"old": other.certificate_id,
                                                              "new": row.certificate_id,
                                                              "revoke_after": (now + self.grace).isoformat()}))
        # certificates issued before this one that were never recorded (e.g. factory/initial issuance) too
        self._supersede_unrecorded(row, now)
        return row

    def _supersede_unrecorded(self, row: StationCertificate, now: dt.datetime) -> None:
        rec = repo.get_certificate(self.db, row.certificate_id)
        if rec is None:
            return
        for old in repo.list_certificates(self.db, kind=rec.kind, status=CertStatus.VALID, owner=row.station_id,
                                          limit=1000):
            if old.id is None or old.id >= row.certificate_id or lrepo.get_station_certificate(self.db, old.id):
                continue
            new_row = lrepo.upsert_station_certificate(self.db, row.station_id, old.id, row.certificate_type, now)
            lrepo.update_station_certificate(self.db, _rid(new_row), state=StationCertState.SUPERSEDED,
                                             superseded_at=now, revoke_after=now + self.grace)

    def _reject(self, row: StationCertificate, reason: str, action: str,
                extra: dict[str, str | None] | None = None) -> StationCertificate:
        log.warning("station %s rejected certificate %s: %s", row.station_id, row.certificate_id, reason)
        repo.add_audit(self.db, repo.audit_event(f"station:{row.station_id}", action, "warning",
                                                 target=row.station_id,
                                                 details={"certificate_id": row.certificate_id, "reason": reason,
                                                          **(extra or {})}))
        return lrepo.update_station_certificate(self.db, _rid(row), state=StationCertState.REJECTED,
                                                reason=reason[:512])


def _norm_type(value: str) -> str:
    return V2G if value in (V2G, "V2G20Certificate") else CHARGING_STATION


def _rid(row: StationCertificate) -> int:
    assert row.id is not None
    return row.id
