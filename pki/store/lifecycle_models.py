"""Tables for root/sub-CA rotation jobs, the scheduler lease, station certificate lifecycle and renewal requests.

Jobs keep *all* their progress in the database (never in process memory), so a job interrupted by a crash or a
deploy continues with ``pnc job resume`` exactly where it stopped. Every outbound call a job makes carries an
idempotency key (``job_item.id`` + step); the station gateway de-duplicates on that key, so a step retried after a
crash between "enqueued" and "recorded" never sends the station a second message.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobStatus:
    PLANNED = "planned"  # created, nothing done yet (a dry run never leaves this state)
    RUNNING = "running"  # steps in progress
    WAITING = "waiting"  # nothing to do until stations answer/reconnect or a blocker clears
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    FINAL = frozenset({"completed", "failed", "cancelled"})


class ItemState:
    PENDING = "pending"
    INSTALLED = "installed"
    FAILED = "failed"


class LifecycleJob(SQLModel, table=True):
    __tablename__ = "lifecycle_job"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # root-rotate
    status: str = Field(default=JobStatus.PLANNED, max_length=16, index=True)
    phase: str = Field(default="prepare", max_length=32)  # job-level phase (prepare/rollout/retire/done)
    target: str = Field(max_length=128)  # e.g. the hierarchy or CA name
    params: str = Field(default="{}", max_length=4096)  # JSON: options as given
    state: str = Field(default="{}", max_length=8192)  # JSON: names of created CAs, link certificate id, ...
    message: str | None = Field(default=None, max_length=1024)  # human-readable why it waits / failed
    actor: str = Field(default="system", max_length=128)
    created_at: dt.datetime = Field(default_factory=_now)
    updated_at: dt.datetime = Field(default_factory=_now)
    finished_at: dt.datetime | None = None


class LifecycleJobItem(SQLModel, table=True):
    """One station's progress through a job; ``state`` is the per-station report (installed/pending/failed)."""

    __tablename__ = "lifecycle_job_item"
    __table_args__ = (UniqueConstraint("job_id", "station_id", name="uq_job_item_station"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="lifecycle_job.id", index=True)
    station_id: str = Field(max_length=128)
    state: str = Field(default=ItemState.PENDING, max_length=16, index=True)
    step: str = Field(default="install", max_length=32)  # install/verify/reissue/await-cert/done/delete/deleted
    message_id: str | None = Field(default=None, max_length=128)  # outstanding gateway call of this step
    reason: str | None = Field(default=None, max_length=512)
    hash_algorithm: str | None = Field(default=None, max_length=8)  # as the station reported the old root
    old_root_hash: str | None = Field(default=None, max_length=1024)  # JSON CertificateHashData to delete later
    attempts: int = Field(default=0)
    requested_at: dt.datetime | None = None  # when the re-issue trigger was accepted
    updated_at: dt.datetime = Field(default_factory=_now)


class SchedulerLease(SQLModel, table=True):
    """A named lease: whoever holds an unexpired row is the single leader for that task (works on SQLite too)."""

    __tablename__ = "scheduler_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: dt.datetime


class StationCertState:
    ISSUED = "issued"  # signed for a SignCertificate, CertificateSigned not yet answered
    ACCEPTED = "accepted"  # the station accepted CertificateSigned
    IN_USE = "in-use"  # the station connected with it (SP3) / V2G certificate accepted
    REJECTED = "rejected"  # the station rejected it or reported InvalidChargingStationCertificate
    SUPERSEDED = "superseded"  # a newer certificate of the same type is in use; revoked after the grace period
    REVOKED = "revoked"


class StationCertificate(SQLModel, table=True):
    """Which certificate a station holds for which purpose, and where it is in the A02/A03 lifecycle."""

    __tablename__ = "station_certificate"
    __table_args__ = (Index("ix_station_certificate_station", "station_id", "certificate_type"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=128)
    certificate_id: int = Field(foreign_key="certificate.id", unique=True)
    certificate_type: str = Field(max_length=32)  # ChargingStationCertificate / V2GCertificate
    state: str = Field(default=StationCertState.ISSUED, max_length=16, index=True)
    created_at: dt.datetime = Field(default_factory=_now)
    accepted_at: dt.datetime | None = None
    in_use_at: dt.datetime | None = None
    superseded_at: dt.datetime | None = None
    revoke_after: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    reason: str | None = Field(default=None, max_length=512)


class RenewalRequest(SQLModel, table=True):
    """One renewal trigger or CA warning per certificate and window: the expiry watch never repeats itself."""

    __tablename__ = "renewal_request"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=128, unique=True)  # "<cert id>:<action>:<window>"
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    action: str = Field(max_length=32)  # trigger / warn
    message_id: str | None = Field(default=None, max_length=128)
    created_at: dt.datetime = Field(default_factory=_now)
