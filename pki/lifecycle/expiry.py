"""Expiry watch: find certificates close to notAfter and act before stations go dark.

* Station certificates (station client, SECC) of *connected* stations: TriggerMessage
  SignChargingStationCertificate / SignV2GCertificate (A02), at most once per certificate per day. Offline
  stations are handled on their next tick after they reconnect (:meth:`ExpiryWatch.station_connected`).
* CA certificates (roots, sub-CAs, OCSP signers): a warning in the audit log and the service log, once per
  certificate per day. OCSP signer and CRL renewal run through ``renewers`` (hooks the revocation service binds).
* Every tick also revokes superseded station certificates whose grace period ended and advances open jobs.

Several service instances may share one PostgreSQL database: only the holder of the ``expiry-watch`` lease (a row
in ``scheduler_lease``, conditional UPDATE — works on SQLite as well) runs a tick; a crashed leader's lease expires
after ``lease_ttl`` and another instance takes over.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pki.clock import Clock, utc
from pki.errors import PkiError
from pki.lifecycle.gateway import StationGateway
from pki.lifecycle.jobs import JobEngine, process_holder
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import Certificate, RenewalRequest

log = logging.getLogger("pnc.expiry")

DAY = dt.timedelta(days=1)
DEFAULT_THRESHOLDS: dict[str, dt.timedelta] = {
    CertKind.STATION_CLIENT.value: 30 * DAY,  # A03: station renews itself within a month; we trigger first
    CertKind.SECC_LEAF.value: 14 * DAY,
    CertKind.CSMS_SERVER.value: 30 * DAY,
    CertKind.CPS_LEAF.value: 30 * DAY,
    CertKind.OCSP_SIGNER.value: 2 * DAY,
    **{k.value: 180 * DAY for k in (CertKind.CPO_SUB1, CertKind.CPO_SUB2, CertKind.CPS_SUB1, CertKind.CPS_SUB2,
                                    CertKind.MO_SUB1, CertKind.MO_SUB2, CertKind.OEM_SUB1, CertKind.OEM_SUB2,
                                    CertKind.CSMS_SUB)},
    **{k.value: 5 * 365 * DAY for k in (CertKind.V2G_ROOT, CertKind.MO_ROOT, CertKind.OEM_ROOT,
                                        CertKind.CSMS_ROOT)},
}
TRIGGERS = {CertKind.STATION_CLIENT.value: "SignChargingStationCertificate",
            CertKind.SECC_LEAF.value: "SignV2GCertificate"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` or a bare number of days."""
    t = text.strip().lower()
    units = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if t and t[-1] in units:
            return dt.timedelta(seconds=float(t[:-1]) * units[t[-1]])
        return dt.timedelta(days=float(t))
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h)") from None


def parse_thresholds(text: str) -> dict[str, dt.timedelta]:
    """``station-client=30d,secc-leaf=14d`` → overrides of :data:`DEFAULT_THRESHOLDS`."""
    out = dict(DEFAULT_THRESHOLDS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in {k.value for k in CertKind}:
            raise ValueError(f"unknown certificate kind {kind!r} in thresholds")
        out[kind] = parse_duration(value)
    return out


@dataclass(frozen=True)
class ExpiringCertificate:
    record: Certificate
    threshold: dt.timedelta
    remaining: dt.timedelta

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        return {"id": r.id, "serial": r.serial, "kind": r.kind, "subject": r.subject, "owner": r.owner,
                "ca_id": r.ca_id, "not_after": utc(r.not_after).isoformat(), "is_ca": r.subject_ca_id is not None,
                "remaining_days": round(self.remaining.total_seconds() / 86400, 2),
                "threshold_days": round(self.threshold.total_seconds() / 86400, 2)}


@dataclass
class TickReport:
    leader: bool
    triggered: list[str] = field(default_factory=list)  # station ids
    warned: list[str] = field(default_factory=list)  # CA names / certificate subjects
    revoked: int = 0
    jobs: list[int] = field(default_factory=list)
    renewers: dict[str, str] = field(default_factory=dict)


class ExpiryWatch:
    def __init__(self, db: repo.Database, clock: Clock, *, gateway: StationGateway | None,
                 lifecycle: StationLifecycle, engine: JobEngine | None = None,
                 thresholds: Mapping[str, dt.timedelta] | None = None, holder: str | None = None,
                 lease_ttl: dt.timedelta = dt.timedelta(minutes=10),
                 renewers: Mapping[str, Callable[[dt.datetime], object]] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.gateway = gateway
        self.lifecycle = lifecycle
        self.engine = engine
        self.thresholds = dict(thresholds or DEFAULT_THRESHOLDS)
        self.holder = holder or process_holder()
        self.lease_ttl = lease_ttl
        self.renewers = dict(renewers or {})

    # --- queries -------------------------------------------------------------------------------------

    def expiring(self, within: dt.timedelta | None = None, kinds: list[str] | None = None,
                 limit: int = 1000) -> list[ExpiringCertificate]:
        """Certificates expiring within ``within`` (or each kind's own threshold when None), soonest first."""
        now = self.clock.now()
        horizon = within if within is not None else max(self.thresholds.values(), default=30 * DAY)
        wanted = kinds if kinds is not None else (None if within is not None else list(self.thresholds))
        out = []
        for rec in lrepo.expiring_certificates(self.db, now + horizon, now, kinds=wanted, limit=limit):
            threshold = within if within is not None else self.thresholds.get(rec.kind, horizon)
            remaining = utc(rec.not_after) - now
            if remaining <= threshold:
                out.append(ExpiringCertificate(rec, threshold, remaining))
        return out

    # --- the tick ------------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        now = self.clock.now()
        if not lrepo.try_lease(self.db, "expiry-watch", self.holder, now, self.lease_ttl):
            return TickReport(leader=False)
        report = TickReport(leader=True)
        report.revoked = self.lifecycle.revoke_due()
        for item in self.expiring():
            rec = item.record
            if rec.kind in TRIGGERS and rec.owner:
                if self._trigger(rec, now):
                    report.triggered.append(rec.owner)
            elif self._warn(item, now):
                report.warned.append(rec.subject)
        for name, renew in self.renewers.items():
            try:
                report.renewers[name] = str(renew(now))
            except Exception as exc:  # a failing renewer must not stop the watch; it is logged and audited
                log.exception("renewer %s failed", name)
                report.renewers[name] = f"failed: {type(exc).__name__}"
                repo.add_audit(self.db, repo.audit_event("system:expiry", f"renew.{name}", "failure",
                                                         details={"error": type(exc).__name__}))
        if self.engine is not None:
            report.jobs = self.engine.run_open_jobs()
        return report

    def station_connected(self, station_id: str) -> list[str]:
        """A station reconnected: renew its expiring certificates now instead of at the next tick."""
        now = self.clock.now()
        done = []
        for item in self.expiring(kinds=list(TRIGGERS)):
            if item.record.owner == station_id and self._trigger(item.record, now):
                done.append(item.record.kind)
        return done

    def _renewed_already(self, rec: Certificate) -> bool:
        newer = repo.list_certificates(self.db, kind=rec.kind, status="valid", owner=rec.owner, limit=1000)
        return any(n.id != rec.id and utc(n.not_after) > utc(rec.not_after) for n in newer)

    def _trigger(self, rec: Certificate, now: dt.datetime) -> bool:
        assert rec.id is not None and rec.owner is not None
        if self.gateway is None or self._renewed_already(rec):
            return False
        try:
            connected = self.gateway.inventory(rec.owner).connected
        except (KeyError, PkiError):
            return False  # not a station the gateway knows
        if not connected:
            return False
        key = f"{rec.id}:trigger:{now.date().isoformat()}"
        if lrepo.has_renewal_request(self.db, key):
            return False
        audit = repo.audit_event("system:expiry", "certificate.renewal_trigger", "success", target=rec.owner,
                                 details={"certificate_id": rec.id, "serial": rec.serial, "kind": rec.kind,
                                          "not_after": utc(rec.not_after).isoformat()})
        if not lrepo.add_renewal_request(self.db, RenewalRequest(key=key, certificate_id=rec.id, action="trigger",
                                                                  created_at=now), audit):
            return False  # another instance recorded it first
        mid = self.gateway.enqueue(rec.owner, "TriggerMessage", {"requestedMessage": TRIGGERS[rec.kind]},
                                   f"expiry:{key}")
        lrepo.update_renewal_request(self.db, key, message_id=mid)
        log.info("renewal of %s for %s triggered (expires %s)", rec.kind, rec.owner, rec.not_after)
        return True

    def _warn(self, item: ExpiringCertificate, now: dt.datetime) -> bool:
        rec = item.record
        assert rec.id is not None
        if rec.subject_ca_id is None and self._renewed_already(rec):
            return False
        if rec.subject_ca_id is not None:
            ca = repo.get_ca(self.db, rec.subject_ca_id)
            if ca is None or ca.status != "active":
                return False
            if _has_newer_active_ca(self.db, ca.kind, ca.generation, rec):
                return False  # renewed (pnc ca renew): issuance already moved on
        key = f"{rec.id}:warn:{now.date().isoformat()}"
        days = item.remaining.total_seconds() / 86400
        what = "CA" if rec.subject_ca_id is not None else "certificate"
        audit = repo.audit_event("system:expiry", "certificate.expiry_warning", "warning", target=rec.subject[:255],
                                 details={"certificate_id": rec.id, "kind": rec.kind, "serial": rec.serial,
                                          "not_after": utc(rec.not_after).isoformat(),
                                          "remaining_days": round(days, 1), "is_ca": rec.subject_ca_id is not None})
        if not lrepo.add_renewal_request(self.db, RenewalRequest(key=key, certificate_id=rec.id, action="warn",
                                                                  created_at=now), audit):
            return False
        log.warning("%s %s (%s) expires in %.1f days (%s)", what, rec.subject, rec.kind, days, rec.not_after)
        return True


def _has_newer_active_ca(db: repo.Database, kind: str, generation: str, rec: Certificate) -> bool:
    for ca in repo.active_cas_of_kind(db, kind, generation):
        if ca.certificate_id is not None and ca.certificate_id != rec.id:
            other = repo.get_certificate(db, ca.certificate_id)
            if other is not None and utc(other.not_after) > utc(rec.not_after):
                return True
    return False
