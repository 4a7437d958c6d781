"""Repository functions for the lifecycle tables (jobs, leases, station certificates, renewal requests).

Like :mod:`pki.store.repo`, each function runs its own short transaction; the job engine never holds a database
lock while it talks to a station or signs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from pki.store import audit_chain
from pki.store.lifecycle_models import JobStatus
from pki.store.models import (
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertStatus,
    LifecycleJob,
    LifecycleJobItem,
    RenewalRequest,
    SchedulerLease,
    StationCertificate,
)
from pki.store.repo import Database

# --- jobs --------------------------------------------------------------------------------------------------


def add_job(db: Database, job: LifecycleJob, audit: AuditEvent | None = None) -> LifecycleJob:
    with db.session() as s:
        s.add(job)
        if audit is not None:
            audit_chain.append(s, audit)
        s.commit()
        s.refresh(job)
        return job


def get_job(db: Database, job_id: int) -> LifecycleJob | None:
    with db.session() as s:
        return s.get(LifecycleJob, job_id)


def list_jobs(db: Database, *, status: str | None = None, limit: int = 50) -> list[LifecycleJob]:
    with db.session() as s:
        q = select(LifecycleJob)
        if status:
            q = q.where(LifecycleJob.status == status)
        return list(s.exec(q.order_by(col(LifecycleJob.id).desc()).limit(limit)).all())


def update_job(db: Database, job_id: int, audit: AuditEvent | None = None, **changes: Any) -> LifecycleJob:
    with db.session() as s:
        job = s.get(LifecycleJob, job_id)
        if job is None:
            raise LookupError(job_id)
        for key, value in changes.items():
            setattr(job, key, value)
        s.add(job)
        if audit is not None:
            audit_chain.append(s, audit)
        s.commit()
        s.refresh(job)
        return job


def add_items(db: Database, job_id: int, station_ids: Sequence[str], now: dt.datetime) -> int:
    """Create the per-station rows that do not exist yet (idempotent: re-planning adds only new stations)."""
    with db.session() as s:
        have = set(s.exec(select(LifecycleJobItem.station_id).where(LifecycleJobItem.job_id == job_id)).all())
        added = 0
        for sid in station_ids:
            if sid not in have:
                s.add(LifecycleJobItem(job_id=job_id, station_id=sid, updated_at=now))
                have.add(sid)
                added += 1
        s.commit()
        return added


def list_items(db: Database, job_id: int, *, state: str | None = None) -> list[LifecycleJobItem]:
    with db.session() as s:
        q = select(LifecycleJobItem).where(LifecycleJobItem.job_id == job_id)
        if state:
            q = q.where(LifecycleJobItem.state == state)
        return list(s.exec(q.order_by(col(LifecycleJobItem.id))).all())


def get_item(db: Database, item_id: int) -> LifecycleJobItem | None:
    with db.session() as s:
        return s.get(LifecycleJobItem, item_id)


def update_item(db: Database, item_id: int, **changes: Any) -> LifecycleJobItem:
    with db.session() as s:
        item = s.get(LifecycleJobItem, item_id)
        if item is None:
            raise LookupError(item_id)
        for key, value in changes.items():
            setattr(item, key, value)
        s.add(item)
        s.commit()
        s.refresh(item)
        return item


def item_counts(db: Database, job_id: int) -> dict[str, int]:
    with db.session() as s:
        rows = s.exec(
            select(LifecycleJobItem.state, func.count())
            .where(LifecycleJobItem.job_id == job_id)
            .group_by(LifecycleJobItem.state)
        ).all()
        return {state: int(n) for state, n in rows}


def job_counts(db: Database) -> list[tuple[str, str, int]]:
    """(kind, status, count) over all jobs (a metric)."""
    with db.session() as s:
        rows = s.exec(select(LifecycleJob.kind, LifecycleJob.status, func.count())
                      .group_by(LifecycleJob.kind, LifecycleJob.status)).all()
        return [(kind, status, int(n)) for kind, status, n in rows]


def open_job_progress(db: Database) -> list[tuple[int, str, str, str, int]]:
    """(job id, kind, phase, item state, stations) for every unfinished job: rotation progress as a metric."""
    with db.session() as s:
        # five columns: sqlmodel's select() is typed up to four, SQLAlchemy's is not
        rows = s.execute(sa_select(col(LifecycleJob.id), col(LifecycleJob.kind), col(LifecycleJob.phase),
                                   col(LifecycleJobItem.state), func.count())
                      .join(LifecycleJobItem, col(LifecycleJobItem.job_id) == col(LifecycleJob.id))
                      .where(col(LifecycleJob.status).not_in(list(JobStatus.FINAL)))
                      .group_by(col(LifecycleJob.id), col(LifecycleJob.kind), col(LifecycleJob.phase),
                                col(LifecycleJobItem.state))).all()
        return [(int(job_id), kind, phase, state, int(n)) for job_id, kind, phase, state, n in rows]


def open_jobs_for_station(db: Database, station_id: str) -> list[int]:
    with db.session() as s:
        q = (
            select(LifecycleJob.id)
            .join(LifecycleJobItem, col(LifecycleJobItem.job_id) == col(LifecycleJob.id))
            .where(LifecycleJobItem.station_id == station_id)
            .where(col(LifecycleJob.status).in_(["running", "waiting"]))
        )
        return [int(i) for i in s.exec(q).all() if i is not None]


# --- leases ------------------------------------------------------------------------------------------------


def try_lease(db: Database, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
    """Take or renew the lease ``name`` if it is free, expired or already ours. Atomic on SQLite and PostgreSQL:
    a conditional UPDATE (row count says who won) and, for the very first holder, an INSERT guarded by the
    primary key."""
    expires = now + ttl
    with db.session() as s:
        res = s.execute(
            update(SchedulerLease)
            .where(col(SchedulerLease.name) == name)
            .where((col(SchedulerLease.holder) == holder) | (col(SchedulerLease.expires_at) < now))
            .values(holder=holder, expires_at=expires)
        )
        s.commit()
        if res.rowcount == 1:  # type: ignore[attr-defined]
            return True
    with db.session() as s:
        s.add(SchedulerLease(name=name, holder=holder, expires_at=expires))
        try:
            s.commit()
            return True
        except IntegrityError:
            s.rollback()
            return False


def release_lease(db: Database, name: str, holder: str) -> None:
    with db.session() as s:
        row = s.get(SchedulerLease, name)
        if row is not None and row.holder == holder:
            s.delete(row)
            s.commit()


# --- certificates under a CA tree --------------------------------------------------------------------------


def valid_leaves_under(db: Database, ca_ids: Sequence[int], now: dt.datetime, *,
                       exclude_kinds: Sequence[str] = ()) -> list[Certificate]:
    """Unexpired, unrevoked end-entity certificates issued by any of ``ca_ids`` (CA certificates excluded)."""
    with db.session() as s:
        q = (
            select(Certificate)
            .where(col(Certificate.ca_id).in_(list(ca_ids)))
            .where(Certificate.status == CertStatus.VALID)
            .where(col(Certificate.subject_ca_id).is_(None))
            .where(col(Certificate.not_after) > now)
        )
        if exclude_kinds:
            q = q.where(col(Certificate.kind).not_in(list(exclude_kinds)))
        return list(s.exec(q.order_by(col(Certificate.id))).all())


def children_of(db: Database, ca_id: int) -> list[CertificateAuthority]:
    with db.session() as s:
        q = select(CertificateAuthority).where(CertificateAuthority.parent_id == ca_id)
        return list(s.exec(q.order_by(col(CertificateAuthority.id))).all())


def latest_station_certificate(db: Database, station_id: str, kind: str, ca_ids: Sequence[int],
                               issued_after: dt.datetime | None = None) -> Certificate | None:
    with db.session() as s:
        q = (
            select(Certificate)
            .where(Certificate.owner == station_id, Certificate.kind == kind)
            .where(Certificate.status == CertStatus.VALID)
            .where(col(Certificate.ca_id).in_(list(ca_ids)))
        )
        if issued_after is not None:
            q = q.where(col(Certificate.issued_at) >= issued_after)
        return s.exec(q.order_by(col(Certificate.id).desc())).first()


def expiring_certificates(db: Database, before: dt.datetime, now: dt.datetime, *, kinds: Sequence[str] | None = None,
                          limit: int = 1000) -> list[Certificate]:
    """Valid certificates with ``now < notAfter <= before`` (soonest first)."""
    with db.session() as s:
        q = (
            select(Certificate)
            .where(Certificate.status == CertStatus.VALID)
            .where(col(Certificate.not_after) <= before, col(Certificate.not_after) > now)
        )
        if kinds is not None:
            q = q.where(col(Certificate.kind).in_(list(kinds)))
        return list(s.exec(q.order_by(col(Certificate.not_after)).limit(limit)).all())


def revoke_certificate(db: Database, cert_id: int, reason: str, at: dt.datetime, audit: AuditEvent) -> bool:
    """Mark a valid certificate revoked together with its audit event; False if it was not valid any more."""
    with db.session() as s:
        rec = s.get(Certificate, cert_id)
        if rec is None or rec.status != CertStatus.VALID:
            return False
        rec.status = CertStatus.REVOKED
        rec.revoked_at = at
        rec.revocation_reason = reason
        s.add(rec)
        audit_chain.append(s, audit)
        s.commit()
        return True


# --- station certificates ----------------------------------------------------------------------------------


def get_station_certificate(db: Database, certificate_id: int) -> StationCertificate | None:
    with db.session() as s:
        return s.exec(select(StationCertificate).where(StationCertificate.certificate_id == certificate_id)).first()


def upsert_station_certificate(db: Database, station_id: str, certificate_id: int, certificate_type: str,
                               now: dt.datetime) -> StationCertificate:
    with db.session() as s:
        row = s.exec(select(StationCertificate).where(StationCertificate.certificate_id == certificate_id)).first()
        if row is None:
            row = StationCertificate(station_id=station_id, certificate_id=certificate_id,
                                     certificate_type=certificate_type, created_at=now)
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # a concurrent caller recorded it first
                s.rollback()
                row = s.exec(select(StationCertificate)
                             .where(StationCertificate.certificate_id == certificate_id)).one()
                return row
            s.refresh(row)
        return row


def update_station_certificate(db: Database, row_id: int, **changes: Any) -> StationCertificate:
    with db.session() as s:
        row = s.get(StationCertificate, row_id)
        if row is None:
            raise LookupError(row_id)
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def station_certificates(db: Database, station_id: str, certificate_type: str | None = None,
                         states: Sequence[str] | None = None) -> list[StationCertificate]:
    with db.session() as s:
        q = select(StationCertificate).where(StationCertificate.station_id == station_id)
        if certificate_type:
            q = q.where(StationCertificate.certificate_type == certificate_type)
        if states is not None:
            q = q.where(col(StationCertificate.state).in_(list(states)))
        return list(s.exec(q.order_by(col(StationCertificate.id))).all())


def superseded_due(db: Database, now: dt.datetime) -> list[StationCertificate]:
    with db.session() as s:
        q = (
            select(StationCertificate)
            .where(StationCertificate.state == "superseded")
            .where(col(StationCertificate.revoke_after) <= now)
        )
        return list(s.exec(q.order_by(col(StationCertificate.id))).all())


# --- renewal requests --------------------------------------------------------------------------------------


def add_renewal_request(db: Database, row: RenewalRequest, audit: AuditEvent | None = None) -> bool:
    """Record a trigger/warning once; False when this key was already recorded (someone did it already)."""
    with db.session() as s:
        s.add(row)
        if audit is not None:
            audit_chain.append(s, audit)
        try:
            s.commit()
            return True
        except IntegrityError:
            s.rollback()
            return False


def has_renewal_request(db: Database, key: str) -> bool:
    with db.session() as s:
        return s.exec(select(RenewalRequest.id).where(RenewalRequest.key == key)).first() is not None


def update_renewal_request(db: Database, key: str, **changes: Any) -> None:
    with db.session() as s:
        row = s.exec(select(RenewalRequest).where(RenewalRequest.key == key)).first()
        if row is not None:
            for k, v in changes.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()


def audit_events(db: Database, action_prefix: str, *, target: str | None = None, limit: int = 100) -> list[AuditEvent]:
    with db.session() as s:
        q = select(AuditEvent).where(col(AuditEvent.action).startswith(action_prefix))
        if target is not None:
            q = q.where(AuditEvent.target == target)
        return list(s.exec(q.order_by(col(AuditEvent.id).desc()).limit(limit)).all())


def lease_holder(db: Database, name: str) -> str | None:
    with db.session() as s:
        row = s.get(SchedulerLease, name)
        return row.holder if row else None


def steal_lease(db: Database, name: str, old_holder: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
    """Take over a lease from a holder known to be dead (same host, process gone)."""
    with db.session() as s:
        res = s.execute(
            update(SchedulerLease)
            .where(col(SchedulerLease.name) == name, col(SchedulerLease.holder) == old_holder)
            .values(holder=holder, expires_at=now + ttl)
        )
        s.commit()
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]
