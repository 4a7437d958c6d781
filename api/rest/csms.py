"""CSMS-integration API: a CSMS that keeps its own station connections forwards the security messages here.

``POST /api/v1/csms/stations/{id}/messages`` takes the station's OCPP request (action + camelCase payload, validated
with the `ocpp` package's schemas for the given version) and returns the response payload the CSMS relays to the
station. Calls pnc-pki needs to make *to* the station (CertificateSigned after a SignCertificate, operator commands
for stations registered with ``integration = csms``) wait in the outbox: pushed to the configured webhook
(``PNC_OCPP_CSMS_WEBHOOK_URL``) and listable/ackable by polling; the ack carries the station's answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import Actor, ServicesDep, require
from api.ocpp.runtime import get_runtime
from api.rest.stations import OutboxOut
from pki import stations
from pki.errors import Conflict, InvalidRequest, NotFound
from pki.store import ocpp_repo
from pki.store.ocpp_models import OutboxStatus

router = APIRouter(prefix="/api/v1/csms", tags=["csms-integration"])
Csms = Annotated[Actor, Depends(require("csms"))]
STATION_REQUESTS = ("SignCertificate", "GetCertificateStatus", "Authorize", "Get15118EVCertificate",
                    "SecurityEventNotification", "BootNotification", "DataTransfer")


class MessageIn(BaseModel):
    action: Literal["SignCertificate", "GetCertificateStatus", "Authorize", "Get15118EVCertificate",
                    "SecurityEventNotification", "BootNotification", "DataTransfer"]
    payload: dict[str, Any]
    ocpp_version: Literal["1.6", "2.0.1", "2.1"] = "2.0.1"


class MessageOut(BaseModel):
    action: str
    response: dict[str, Any]


class AckIn(BaseModel):
    response: dict[str, Any] | None = Field(default=None, description="The station's answer payload")
    error: str | None = Field(default=None, max_length=500, description="Delivery failed (CALLERROR, offline)")


def _validate(message_type: int, action: str, version: str, payload: dict[str, Any]) -> None:
    from ocpp.messages import get_validator

    try:
        get_validator(message_type, action, version).validate(payload)
    except Exception as exc:
        raise InvalidRequest(f"not a valid OCPP {version} {action} payload: {getattr(exc, 'message', exc)}"[:300],
                             code="SchemaViolation") from None


@router.post("/stations/{station_id}/messages", response_model=MessageOut,
             summary="Forward a station's OCPP security request; returns the response payload")
async def forward(station_id: str, body: MessageIn, services: ServicesDep, _: Csms, request: Request) -> MessageOut:
    runtime = get_runtime(request.app)
    if runtime.loop is None:
        runtime.loop = asyncio.get_running_loop()
    station = await asyncio.to_thread(stations.get_station, services.db, station_id)
    _validate(2, body.action, body.ocpp_version, body.payload)
    result = await asyncio.to_thread(runtime.core.handle, station, body.ocpp_version, body.action, body.payload,
                                     runtime.channel("csms"))
    _validate(3, body.action, body.ocpp_version, result.payload)
    if result.followup is not None:
        asyncio.get_running_loop().run_in_executor(runtime.executor, result.followup)
    return MessageOut(action=body.action, response=result.payload)


@router.get("/pending", response_model=list[OutboxOut], summary="CSMS→station calls waiting for the CSMS to deliver")
def pending(services: ServicesDep, _: Csms, station_id: str | None = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OutboxOut]:
    return [OutboxOut.of(r) for r in ocpp_repo.list_outbox(services.db, station_id=station_id,
                                                           status=OutboxStatus.PENDING, delivery="csms",
                                                           limit=limit)]


@router.post("/pending/{outbox_id}/ack", response_model=OutboxOut, summary="Report the station's answer")
def ack(outbox_id: int, body: AckIn, services: ServicesDep, _: Csms, request: Request) -> OutboxOut:
    row = ocpp_repo.get_outbox(services.db, outbox_id)
    if row is None or row.delivery != "csms":
        raise NotFound(f"no pending CSMS call {outbox_id}")
    if row.status != OutboxStatus.PENDING:
        raise Conflict(f"call {outbox_id} is already {row.status}")
    runtime = get_runtime(request.app)
    if body.response is not None:
        _validate(3, row.action, "2.0.1" if row.wrap == "pnc" else _version(services, row.station_id),
                  body.response)
        runtime.record_answer(row, body.response)
    else:
        ocpp_repo.update_outbox(services.db, outbox_id, status=OutboxStatus.FAILED,
                                error=(body.error or "reported failed by the CSMS")[:512])
    updated = ocpp_repo.get_outbox(services.db, outbox_id)
    assert updated is not None
    return OutboxOut.of(updated)


def _version(services: Any, station_id: str) -> str:
    station = ocpp_repo.get_station(services.db, station_id)
    return (station.ocpp_version if station and station.ocpp_version else "2.0.1")


__all__ = ["STATION_REQUESTS", "json", "router"]
