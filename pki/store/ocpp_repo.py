"""Repository functions for the OCPP tables (stations, events, outbox, certificate inventory).

Same rules as :mod:`pki.store.repo`: one short transaction per function; callers never hold a lock across I/O.
The outbox is claimed row by row with a conditional UPDATE, so two dispatchers can never send the same call twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from pki.store.ocpp_models import (
    OcppConnection,
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


def claim_outbox(db: Database, outbox_id: int, now: dt.datetime, instance_id: str | None = None) -> bool:
    """pending → sent, atomically; False if someone else claimed it first.

    With ``instance_id`` the claim also requires that this instance holds the station's connection (the
    ``ocpp_connection`` row), in the same statement: an instance whose session went stale (the station
    reconnected elsewhere) can no longer send the call; the instance that holds the connection will.
    """
    with db.session() as s:
        q = update(OcppOutbox).where(col(OcppOutbox.id) == outbox_id, col(OcppOutbox.status) == OutboxStatus.PENDING)
        if instance_id is not None:
            q = q.where(exists().where(col(OcppConnection.station_id) == col(OcppOutbox.station_id),
                                       col(OcppConnection.instance_id) == instance_id))
        res = s.exec(q.values(status=OutboxStatus.SENT, sent_at=now, sent_by=instance_id,
                              attempts=OcppOutbox.attempts + 1))
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


def requeue_sent(db: Database, station_id: str | None = None, *, sent_by: str | None = None) -> int:
    """Calls that were on the wire when a connection (or the process) died go back to pending; ``sent_by``
    limits it to the calls this instance sent (another instance's calls are still in flight)."""
    with db.session() as s:
        q = update(OcppOutbox).where(col(OcppOutbox.status) == OutboxStatus.SENT,
                                     col(OcppOutbox.delivery) == "direct")
        if station_id is not None:
            q = q.where(col(OcppOutbox.station_id) == station_id)
        if sent_by is not None:
            q = q.where(col(OcppOutbox.sent_by) == sent_by)
        res = s.exec(q.values(status=OutboxStatus.PENDING))
        s.commit()
        return int(res.rowcount or 0)


def requeue_orphans(db: Database, now: dt.datetime) -> int:
    """Requeue calls left ``sent`` by an instance that no longer holds the station's connection: it died (its
    lease ran out) or the station reconnected to another instance. Rows without a sender (older code) count as
    orphaned. Calls in flight on a live instance are untouched."""
    live = exists().where(col(OcppConnection.station_id) == col(OcppOutbox.station_id),
                          col(OcppConnection.instance_id) == col(OcppOutbox.sent_by),
                          col(OcppConnection.lease_until) > now)
    with db.session() as s:
        res = s.exec(update(OcppOutbox).where(col(OcppOutbox.status) == OutboxStatus.SENT,
                                              col(OcppOutbox.delivery) == "direct", ~live)
                     .values(status=OutboxStatus.PENDING))
        s.commit()
        return int(res.rowcount or 0)


# --- which instance holds which station's connection ----------------------------------------------------------


def claim_connection(db: Database, station_id: str, instance_id: str, now: dt.datetime,
                     lease: dt.timedelta) -> None:
    """This instance now holds the station's WebSocket (a reconnect elsewhere takes the row over)."""
    for attempt in range(3):
        with db.session() as s:
            s.exec(delete(OcppConnection).where(col(OcppConnection.station_id) == station_id))
            s.add(OcppConnection(station_id=station_id, instance_id=instance_id, connected_at=now,
                                 lease_until=now + lease))
            try:
                s.commit()
                return
            except IntegrityError:  # another instance inserted between our delete and insert: last one wins
                s.rollback()
                if attempt == 2:
                    raise


def release_connection(db: Database, station_id: str, instance_id: str) -> None:
    """The connection closed: drop the row, unless another instance has taken the station over meanwhile."""
    with db.session() as s:
        s.exec(delete(OcppConnection).where(col(OcppConnection.station_id) == station_id,
                                            col(OcppConnection.instance_id) == instance_id))
        s.commit()


def renew_connections(db: Database, instance_id: str, now: dt.datetime, lease: dt.timedelta) -> int:
    """Extend the leases of every connection this instance holds (one statement however many stations), and
    drop rows whose lease ran out long ago (instances that died without releasing)."""
    with db.session() as s:
        res = s.exec(update(OcppConnection).where(col(OcppConnection.instance_id) == instance_id)
                     .values(lease_until=now + lease))
        s.exec(delete(OcppConnection).where(col(OcppConnection.lease_until) < now - lease))
        s.commit()
        return int(res.rowcount or 0)


def release_instance(db: Database, instance_id: str) -> None:
    """A clean shutdown: this instance holds no connection any more."""
    with db.session() as s:
        s.exec(delete(OcppConnection).where(col(OcppConnection.instance_id) == instance_id))
        s.commit()


def live_owners(db: Database, station_ids: Sequence[str], now: dt.datetime) -> dict[str, str]:
    """station id → instance holding its connection with a live lease, for the given stations."""
    if not station_ids:
        return {}
    with db.session() as s:
        rows = s.exec(select(OcppConnection.station_id, OcppConnection.instance_id).where(
            col(OcppConnection.station_id).in_(list(station_ids)), col(OcppConnection.lease_until) > now)).all()
        return {station: instance for station, instance in rows}


def outbox_depth(db: Database) -> list[tuple[str, str, int, dt.datetime | None]]:
    """(status, delivery, count, oldest created_at) for the rows still waiting (pending or sent): the metrics'
    outbox depth and age."""
    with db.session() as s:
        rows = s.exec(select(OcppOutbox.status, OcppOutbox.delivery, func.count(), func.min(OcppOutbox.created_at))
                      .where(or_(col(OcppOutbox.status) == OutboxStatus.PENDING,
                                 col(OcppOutbox.status) == OutboxStatus.SENT))
                      .group_by(OcppOutbox.status, OcppOutbox.delivery)).all()
        return [(status, delivery, int(n), oldest) for status, delivery, n, oldest in rows]


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


def inventory_serial(value: str) -> str:
    """A station-reported serial number as the inventory stores it: lower-case hex without leading zeros
    (stations write it as they like; OCPP 2.0.1 asks for no leading zeros)."""
    return value.lower().lstrip("0") or "0"


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
