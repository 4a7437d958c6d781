"""Station registry and CSMS→station certificate-management commands (queued in the durable outbox)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import READ_ROLES, Actor, ServicesDep, require
from api.ocpp.runtime import get_runtime
from pki import stations
from pki.errors import InvalidRequest, NotFound
from pki.store import ocpp_repo
from pki.store.ocpp_models import OcppInstalledCertificate, OcppOutbox, OcppStation, OcppStationEvent

router = APIRouter(prefix="/api/v1", tags=["stations"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]
Operator = Annotated[Actor, Depends(require("operator"))]
CommandAction = Literal["InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds", "TriggerMessage",
                        "CertificateSigned", "ExtendedTriggerMessage"]


class StationIn(BaseModel):
    station_id: str = Field(min_length=1, max_length=48)
    serial_number: str = Field(min_length=1, max_length=64)
    organization: str = Field(min_length=1, max_length=64)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    secc_ids: list[str] = Field(default_factory=list, max_length=64)
    security_profile: Literal[1, 2, 3] = 1
    password: str | None = Field(default=None, min_length=16, max_length=40,
                                 description="Basic-auth password (profiles 1/2); generated when omitted")
    integration: Literal["direct", "csms"] = "direct"


class StationOut(BaseModel):
    station_id: str
    serial_number: str
    organization: str
    country: str | None
    secc_ids: list[str]
    security_profile: int
    integration: str
    enabled: bool
    ocpp_version: str | None
    connected: bool
    last_seen_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, s: OcppStation, connected: bool) -> StationOut:
        return cls(station_id=s.station_id, serial_number=s.serial_number, organization=s.organization,
                   country=s.country, secc_ids=list(stations.secc_ids_of(s)), security_profile=s.security_profile,
                   integration=s.integration, enabled=s.enabled, ocpp_version=s.ocpp_version, connected=connected,
                   last_seen_at=s.last_seen_at, created_at=s.created_at)


class StationCreated(BaseModel):
    station: StationOut
    password: str | None = Field(description="The generated Basic-auth password, shown once (stored hashed)")


class EventOut(BaseModel):
    id: int
    kind: str
    type: str | None
    at: dt.datetime
    payload: dict[str, Any]

    @classmethod
    def of(cls, e: OcppStationEvent) -> EventOut:
        return cls(id=e.id or 0, kind=e.kind, type=e.type, at=e.at, payload=json.loads(e.payload))


class InventoryOut(BaseModel):
    id: int
    certificate_type: str
    certificate_hash_data: dict[str, str]
    child_certificate_hash_data: list[Any]
    reported_at: dt.datetime

    @classmethod
    def of(cls, i: OcppInstalledCertificate) -> InventoryOut:
        return cls(id=i.id or 0, certificate_type=i.certificate_type, reported_at=i.reported_at,
                   certificate_hash_data={"hashAlgorithm": i.hash_algorithm, "issuerNameHash": i.issuer_name_hash,
                                          "issuerKeyHash": i.issuer_key_hash, "serialNumber": i.serial_number},
                   child_certificate_hash_data=json.loads(i.children))


class OutboxOut(BaseModel):
    id: int
    station_id: str
    action: str
    payload: dict[str, Any]
    wrap: str | None
    delivery: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    answered_at: dt.datetime | None
    response: dict[str, Any] | None
    error: str | None

    @classmethod
    def of(cls, r: OcppOutbox) -> OutboxOut:
        return cls(id=r.id or 0, station_id=r.station_id, action=r.action, payload=json.loads(r.payload),
                   wrap=r.wrap, delivery=r.delivery, status=r.status, attempts=r.attempts,
                   next_attempt_at=r.next_attempt_at, created_at=r.created_at, answered_at=r.answered_at,
                   response=json.loads(r.response) if r.response else None, error=r.error)


class CommandIn(BaseModel):
    action: CommandAction
    payload: dict[str, Any] = Field(default_factory=dict,
                                    description="camelCase payload of the station's OCPP version; for "
                                                "DeleteCertificate you may give {\"inventoryId\": n} instead")
    pnc: bool = Field(default=False, description="OCPP 1.6 stations: send via the PnC DataTransfer wrapper")


class SelectionCommandIn(CommandIn):
    station_ids: list[str] | None = Field(default=None, max_length=10_000)
    organization: str | None = None


def _connected(request: Request) -> set[str]:
    return set(get_runtime(request.app).sessions)


@router.post("/stations", response_model=StationCreated, status_code=201, summary="Register a station")
def add_station(body: StationIn, services: ServicesDep, actor: Operator, request: Request) -> StationCreated:
    station, password = stations.register_station(services.db, stations.StationSpec(
        station_id=body.station_id, serial_number=body.serial_number, organization=body.organization,
        secc_ids=tuple(body.secc_ids), security_profile=body.security_profile, password=body.password,
        country=body.country, integration=body.integration), actor=actor.label)
    return StationCreated(station=StationOut.of(station, False), password=password)


@router.get("/stations", response_model=list[StationOut], summary="List stations")
def list_stations(services: ServicesDep, _: Reader, request: Request, organization: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                  offset: Annotated[int, Query(ge=0)] = 0) -> list[StationOut]:
    online = _connected(request)
    return [StationOut.of(s, s.station_id in online)
            for s in ocpp_repo.list_stations(services.db, organization=organization, limit=limit, offset=offset)]


@router.get("/stations/{station_id}", response_model=StationOut, summary="Show a station")
def show_station(station_id: str, services: ServicesDep, _: Reader, request: Request) -> StationOut:
    return StationOut.of(stations.get_station(services.db, station_id), station_id in _connected(request))


@router.delete("/stations/{station_id}", status_code=204, summary="Remove a station (drops its pending calls)")
def remove_station(station_id: str, services: ServicesDep, actor: Operator) -> None:
    stations.remove_station(services.db, station_id, actor=actor.label)


@router.get("/stations/{station_id}/events", response_model=list[EventOut],
            summary="What the station reported: security events, status, boots, notify events")
def station_events(station_id: str, services: ServicesDep, _: Reader, kind: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[EventOut]:
    stations.get_station(services.db, station_id)
    return [EventOut.of(e) for e in ocpp_repo.list_events(services.db, station_id, kind=kind, limit=limit)]


@router.get("/stations/{station_id}/installed-certificates", response_model=list[InventoryOut],
            summary="The station's certificate inventory as last reported (GetInstalledCertificateIds)")
def station_inventory(station_id: str, services: ServicesDep, _: Reader) -> list[InventoryOut]:
    stations.get_station(services.db, station_id)
    return [InventoryOut.of(i) for i in ocpp_repo.list_inventory(services.db, station_id)]


def resolve_payload(services: Any, station_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """DeleteCertificate by inventory id: use the hash exactly as the station reported it (M04.FR.07)."""
    if action == "DeleteCertificate" and "inventoryId" in payload:
        wanted = payload["inventoryId"]
        item = next((i for i in ocpp_repo.list_inventory(services.db, station_id) if i.id == wanted), None)
        if item is None:
            raise NotFound(f"station {station_id!r} reported no certificate with inventory id {wanted}")
        return {"certificateHashData": InventoryOut.of(item).certificate_hash_data}
    return payload


@router.post("/stations/{station_id}/commands", response_model=list[OutboxOut], status_code=202,
             summary="Queue a certificate-management call for one station")
def station_command(station_id: str, body: CommandIn, services: ServicesDep, actor: Operator,
                    request: Request) -> list[OutboxOut]:
    payload = resolve_payload(services, station_id, body.action, body.payload)
    rows = get_runtime(request.app).enqueue_command([station_id], body.action, payload, actor=actor.label,
                                                    pnc=body.pnc)
    return [OutboxOut.of(r) for r in rows]


@router.post("/stations/commands", response_model=list[OutboxOut], status_code=202,
             summary="Queue a call for a selection of stations (ids and/or an organisation)")
def selection_command(body: SelectionCommandIn, services: ServicesDep, actor: Operator,
                      request: Request) -> list[OutboxOut]:
    ids = list(body.station_ids or [])
    if body.organization is not None:
        ids += [s.station_id for s in ocpp_repo.list_stations(services.db, organization=body.organization,
                                                              limit=100_000)]
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise InvalidRequest("the selection names no station")
    if body.action == "DeleteCertificate" and "inventoryId" in body.payload:
        raise InvalidRequest("inventoryId is per station; use the single-station endpoint")
    rows = get_runtime(request.app).enqueue_command(ids, body.action, body.payload, actor=actor.label, pnc=body.pnc)
    return [OutboxOut.of(r) for r in rows]


@router.get("/stations/{station_id}/outbox", response_model=list[OutboxOut], summary="Calls queued for a station")
def station_outbox(station_id: str, services: ServicesDep, _: Reader, status: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OutboxOut]:
    return [OutboxOut.of(r) for r in ocpp_repo.list_outbox(services.db, station_id=station_id, status=status,
                                                           limit=limit)]


@router.get("/outbox/{outbox_id}", response_model=OutboxOut, summary="One queued call and the station's answer")
def outbox_item(outbox_id: int, services: ServicesDep, _: Reader) -> OutboxOut:
    row = ocpp_repo.get_outbox(services.db, outbox_id)
    if row is None:
        raise NotFound(f"no outbox entry {outbox_id}")
    return OutboxOut.of(row)
