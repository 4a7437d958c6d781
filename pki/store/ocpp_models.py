"""Tables of the OCPP security endpoint: the station registry, what stations reported, and the durable outbox.

JSON columns are plain text (SQLite and PostgreSQL alike); only this package reads them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = ["OcppConnection", "OcppInstalledCertificate", "OcppOutbox", "OcppStation", "OcppStationEvent",
           "OutboxStatus"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OcppStation(SQLModel, table=True):
    """A registered charging station. The Basic-auth password is stored only as a salted scrypt hash."""

    __tablename__ = "ocpp_station"

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=48, unique=True, index=True)  # OCPP identity (URL path, Basic-auth user)
    serial_number: str = Field(max_length=64)  # CN of the station's client certificate (A00.FR.511)
    organization: str = Field(max_length=64)  # O of its certificates (A02.FR.13)
    country: str | None = Field(default=None, max_length=2)
    secc_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list: SECC/EVSE IDs
    security_profile: int = Field(default=1)
    password_hash: str | None = Field(default=None, max_length=256)
    integration: str = Field(default="direct", max_length=16)  # direct (connects to us) | csms (via REST)
    enabled: bool = Field(default=True)
    ocpp_version: str | None = Field(default=None, max_length=8)  # last negotiated subprotocol
    last_seen_at: dt.datetime | None = None
    boot_info: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: dt.datetime = Field(default_factory=_now)


class OcppStationEvent(SQLModel, table=True):
    """What a station told us: security events, status notifications, device-model events, boots."""

    __tablename__ = "ocpp_station_event"
    __table_args__ = (Index("ix_ocpp_event_station_kind", "station_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=48)
    kind: str = Field(max_length=32)  # security | status | notify | boot
    type: str | None = Field(default=None, max_length=64)
    at: dt.datetime = Field(default_factory=_now, index=True)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))


class OutboxStatus:
    PENDING = "pending"  # waiting for delivery (station offline, or back-off after a failed attempt)
    SENT = "sent"  # on the wire, no answer yet (reset to pending if the connection drops)
    ANSWERED = "answered"  # the station (or CSMS) answered; response holds its payload
    FAILED = "failed"  # the station answered with a CALLERROR, or attempts are exhausted
    EXPIRED = "expired"


class OcppOutbox(SQLModel, table=True):
    """A CSMS→station call that must survive restarts and disconnects (durable outbox)."""

    __tablename__ = "ocpp_outbox"
    __table_args__ = (Index("ix_ocpp_outbox_due", "status", "next_attempt_at"),
                      Index("ix_ocpp_outbox_station", "station_id", "status"))

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=48)
    action: str = Field(max_length=64)  # OCPP 2.0.1-style action name (or the 1.6 native name)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON, camelCase as on the wire
    wrap: str | None = Field(default=None, max_length=16)  # "pnc": OCPP 1.6 DataTransfer wrapper
    delivery: str = Field(default="direct", max_length=16)  # direct (WebSocket) | csms (webhook/poll)
    status: str = Field(default=OutboxStatus.PENDING, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime = Field(default_factory=_now)
    expires_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=_now)
    sent_at: dt.datetime | None = None
    answered_at: dt.datetime | None = None
    response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, max_length=512)
    actor: str | None = Field(default=None, max_length=128)
    webhook_status: str | None = Field(default=None, max_length=32)
    sent_by: str | None = Field(default=None, max_length=128)  # instance that put it on the wire (status sent)


class OcppConnection(SQLModel, table=True):
    """Which service instance holds a station's WebSocket right now.

    Several instances share one database but a station is connected to exactly one of them: only that instance
    may claim the station's outbox rows (so a call is sent once, by the instance that can send it), other
    instances leave them alone instead of backing them off as "offline", and calls left ``sent`` by an instance
    that died are requeued once its lease has run out (or the station reconnected elsewhere). The holder renews
    ``lease_until`` periodically; a reconnect to another instance simply takes the row over.
    """

    __tablename__ = "ocpp_connection"

    station_id: str = Field(primary_key=True, max_length=48)
    instance_id: str = Field(max_length=128, index=True)
    connected_at: dt.datetime = Field(default_factory=_now)
    lease_until: dt.datetime = Field(default_factory=_now)


class OcppInstalledCertificate(SQLModel, table=True):
    """The station's certificate inventory as it last reported it (GetInstalledCertificateIds), per hash."""

    __tablename__ = "ocpp_installed_certificate"
    __table_args__ = (UniqueConstraint("station_id", "certificate_type", "hash_algorithm", "issuer_name_hash",
                                       "issuer_key_hash", "serial_number", name="uq_ocpp_installed"),)

    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(max_length=48, index=True)
    certificate_type: str = Field(max_length=48)
    hash_algorithm: str = Field(max_length=8)
    issuer_name_hash: str = Field(max_length=128)
    issuer_key_hash: str = Field(max_length=128)
    serial_number: str = Field(max_length=40)
    children: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # childCertificateHashData
    reported_at: dt.datetime = Field(default_factory=_now)
