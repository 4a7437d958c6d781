"""Repository functions for the OCPP tables (stations, events, outbox, certificate inventory).

Same rules as :mod:`pki.store.repo`: one short transaction per function; callers never hold a lock across I/O.
The outbox is claimed row by row with a conditional UPDATE, so two dispatchers can never send the same call twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from pki.store.ocpp_models import (
    OcppInstalledCertificate,
    OcppOutbox,
    OcppStation,
    OcppStationEvent,
    OutboxStatus,
)
from pki.store.repo import Database


class DuplicateStation(Exception):
    """The station id is already registered."""


# --- stations ---------------------------------------------------------------------------------------------


def add_station(db: Database, station: OcppStation) -> OcppStation:
    with db.session() as s:
        s.add(station)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            raise DuplicateStation(station.station_id) from None
        s.refresh(station)
        return station


def get_station(db: Database, station_id: str) -> OcppStation | None:
    with db.session() as s:
        return s.exec(select(OcppStation).where(OcppStation.station_id == station_id)).first()


def list_stations(db: Database, *, organization: str | None = None, limit: int = 1000,
                  offset: int = 0) -> list[OcppStation]:
    with db.session() as s:
        q = select(OcppStation)
        if organization is not None:
            q = q.where(OcppStation.organization == organization)
        q = q.order_by(col(OcppStation.id)).offset(offset).limit(limit)
        return list(s.exec(q).all())


def update_station(db: Database, station_id: str, **changes: Any) -> OcppStation | None:
    with db.session() as s:
        row = s.exec(select(OcppStation).where(OcppStation.station_id == station_id)).first()
        if row is None:
            return None
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def delete_station(db: Database, station_id: str) -> bool:
    with db.session() as s:
        row = s.exec(select(OcppStation).where(OcppStation.station_id == station_id)).first()
        if row is None:
            return False
        s.delete(row)
        s.exec(delete(OcppOutbox).where(col(OcppOutbox.station_id) == station_id,
                                        col(OcppOutbox.status) == OutboxStatus.PENDING))
        s.commit()
        return True


# --- events -----------------------------------------------------------------------------------------------


def add_event(db: Database, station_id: str, kind: str, type_: str | None, payload: dict[str, Any],
              at: dt.datetime | None = None) -> OcppStationEvent:
    row = OcppStationEvent(station_id=station_id, kind=kind, type=type_, payload=json.dumps(payload)[:60_000])
    if at is not None:
        row.at = at
    with db.session() as s:
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def list_events(db: Database, station_id: str, *, kind: str | None = None, limit: int = 100) -> list[OcppStationEvent]:
    with db.session() as s:
        q = select(OcppStationEvent).where(OcppStationEvent.station_id == station_id)
        if kind is not None:
            q = q.where(OcppStationEvent.kind == kind)
        return list(s.exec(q.order_by(col(OcppStationEvent.id).desc()).limit(limit)).all())


# --- outbox -----------------------------------------------------------------------------------------------


def enqueue(db: Database, rows: Sequence[OcppOutbox]) -> list[OcppOutbox]:
    with db.session() as s:
        for row in rows:
            s.add(row)
        s.commit()
        for row in rows:
            s.refresh(row)
        return list(rows)


def get_outbox(db: Database, outbox_id: int) -> OcppOutbox | None:
    with db.session() as s:
        return s.get(OcppOutbox, outbox_id)


def list_outbox(db: Database, *, station_id: str | None = None, status: str | None = None,
                delivery: str | None = None, limit: int = 100) -> list[OcppOutbox]:
    with db.session() as s:
        q = select(OcppOutbox)
        if station_id is not None:
            q = q.where(OcppOutbox.station_id == station_id)
        if status is not None:
            q = q.where(OcppOutbox.status == status)
        if delivery is not None:
            q = q.where(OcppOutbox.delivery == delivery)
        return list(s.exec(q.order_by(col(OcppOutbox.id)).limit(limit)).all())


def due_outbox(db: Database, now: dt.datetime, *, station_ids: Sequence[str] | None = None,
               ignore_backoff: bool = False, limit: int = 100) -> list[OcppOutbox]:
    """Pending direct-delivery rows that are due (or all pending rows of the given stations)."""
    with db.session() as s:
        q = select(OcppOutbox).where(OcppOutbox.status == OutboxStatus.PENDING, OcppOutbox.delivery == "direct")
        if station_ids is not None:
            q = q.where(col(OcppOutbox.station_id).in_(list(station_ids)))
        if not ignore_backoff:
            q = q.where(col(OcppOutbox.next_attempt_at) <= now)
        return list(s.exec(q.order_by(col(OcppOutbox.id)).limit(limit)).all())


def claim_outbox(db: Database, outbox_id: int, now: dt.datetime) -> bool:
    """pending → sent, atomically; False if someone else claimed it first."""
    with db.session() as s:
        res = s.exec(update(OcppOutbox).where(col(OcppOutbox.id) == outbox_id,
                                              col(OcppOutbox.status) == OutboxStatus.PENDING)
                     .values(status=OutboxStatus.SENT, sent_at=now, attempts=OcppOutbox.attempts + 1))
        s.commit()
        return bool(res.rowcount == 1)


def update_outbox(db: Database, outbox_id: int, **changes: Any) -> OcppOutbox | None:
    with db.session() as s:
        row = s.get(OcppOutbox, outbox_id)
        if row is None:
            return None
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def requeue_sent(db: Database, station_id: str | None = None) -> int:
    """Calls that were on the wire when a connection (or the process) died go back to pending."""
    with db.session() as s:
        q = update(OcppOutbox).where(col(OcppOutbox.status) == OutboxStatus.SENT,
                                     col(OcppOutbox.delivery) == "direct")
        if station_id is not None:
            q = q.where(col(OcppOutbox.station_id) == station_id)
        res = s.exec(q.values(status=OutboxStatus.PENDING))
        s.commit()
        return int(res.rowcount or 0)


# --- certificate inventory --------------------------------------------------------------------------------


def replace_inventory(db: Database, station_id: str, certificate_types: Sequence[str] | None,
                      rows: Sequence[OcppInstalledCertificate]) -> None:
    """Replace what we know for the reported types (all types when ``certificate_types`` is None)."""
    with db.session() as s:
        q = delete(OcppInstalledCertificate).where(col(OcppInstalledCertificate.station_id) == station_id)
        if certificate_types is not None:
            q = q.where(col(OcppInstalledCertificate.certificate_type).in_(list(certificate_types)))
        s.exec(q)
        for row in rows:
            s.add(row)
        s.commit()


def add_inventory(db: Database, row: OcppInstalledCertificate) -> None:
    with db.session() as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()


def list_inventory(db: Database, station_id: str) -> list[OcppInstalledCertificate]:
    with db.session() as s:
        q = select(OcppInstalledCertificate).where(OcppInstalledCertificate.station_id == station_id)
        return list(s.exec(q.order_by(col(OcppInstalledCertificate.id))).all())


def remove_inventory(db: Database, station_id: str, *, hash_algorithm: str, issuer_name_hash: str,
                     issuer_key_hash: str, serial_number: str) -> int:
    with db.session() as s:
        res = s.exec(delete(OcppInstalledCertificate).where(
            col(OcppInstalledCertificate.station_id) == station_id,
            col(OcppInstalledCertificate.hash_algorithm) == hash_algorithm,
            col(OcppInstalledCertificate.issuer_name_hash) == issuer_name_hash,
            col(OcppInstalledCertificate.issuer_key_hash) == issuer_key_hash,
            col(OcppInstalledCertificate.serial_number) == serial_number))
        s.commit()
        return int(res.rowcount or 0)
