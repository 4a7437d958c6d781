"""The `ocpp` package's ChargePoint, CSMS side, for 1.6, 2.0.1 and 2.1, with a tiny FastAPI WebSocket adapter.

The package does routing, snake/camel conversion and JSON-schema validation of every request and response; each
handler forwards to :class:`api.ocpp.core.StationCore` in a worker thread (database and crypto never run on the
event loop) and starts the follow-up (CSR signing) only after the answer went out (``@after``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fastapi import WebSocket
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call, MessageType, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v21 import ChargePoint as CP21
from ocpp.v201 import ChargePoint as CP201

from api.ocpp.core import PNC_VENDOR, Channel, StationCore
from api.ocpp.schema_formats import get_validator
from pki.errors import PkiError
from pki.store.ocpp_models import OcppStation

STATION_ACTIONS = {
    "1.6": ("BootNotification", "Heartbeat", "StatusNotification", "SecurityEventNotification", "SignCertificate",
            "DataTransfer"),
    "2.0.1": ("BootNotification", "Heartbeat", "StatusNotification", "NotifyEvent", "SecurityEventNotification",
              "SignCertificate", "GetCertificateStatus", "Authorize", "Get15118EVCertificate"),
}
STATION_ACTIONS["2.1"] = STATION_ACTIONS["2.0.1"]


class CallErrorReceived(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class WebSocketAdapter:
    """What ChargePoint needs from a connection: ``send(str)`` (``recv`` is driven by the endpoint's loop)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.closed = False

    async def send(self, message: str) -> None:
        if not self.closed:
            await self.websocket.send_text(message)

    async def recv(self) -> str:  # pragma: no cover - the endpoint reads frames itself (framing checks first)
        return await self.websocket.receive_text()


class _Mixin:
    """Shared CSMS-side behaviour; combined with each version's ChargePoint below."""

    core: StationCore
    station: OcppStation
    notify: Any
    _followup: Any
    _ocpp_version: str

    def _channel(self) -> Channel:
        return Channel(delivery="direct", notify=self.notify)

    async def _dispatch(self, action: str, unique_id: str, kwargs: dict[str, Any]) -> Any:
        payload = snake_to_camel_case(kwargs)
        try:
            result = await asyncio.to_thread(self.core.handle, self.station, self._ocpp_version, action, payload,
                                             self._channel())
        except PkiError as exc:
            raise InternalError(description=exc.message[:200]) from None
        if result.followup is not None:
            self._followup[unique_id] = result.followup
        result_cls = getattr(self._call_result, action)  # type: ignore[attr-defined]
        return result_cls(**camel_to_snake_case(result.payload))

    async def _send(self, message: str) -> None:
        """After the answer to a CALL is on the wire, start that CALL's follow-up (never before: A02 ordering)."""
        if message.startswith("[4"):
            message = callerror_for_version(message, self._ocpp_version)
        await self._connection.send(message)  # type: ignore[attr-defined]
        if self._followup and (message.startswith("[3") or message.startswith("[4")):
            try:
                frame = json.loads(message)
            except ValueError:
                return
            followup = self._followup.pop(frame[1], None)
            if followup is not None and frame[0] == MessageType.CallResult:
                task = asyncio.get_running_loop().run_in_executor(self.executor, followup)  # type: ignore[attr-defined]
                self.tasks.add(task)  # type: ignore[attr-defined]
                task.add_done_callback(self.tasks.discard)  # type: ignore[attr-defined]

    async def call_raw(self, action: str, payload: dict[str, Any], *, wrap: str | None,
                       timeout: float) -> dict[str, Any]:
        """Send a CSMS→station CALL from an outbox row (payload already camelCase) and return the answer payload.

        Request and response are validated with the package's schemas; for the 1.6 PnC wrapper the inner 2.0.1
        payloads are validated against the 2.0.1 schemas.
        """
        wire_action, wire_payload = action, payload
        if wrap == "pnc":
            get_validator(MessageType.Call, action, "2.0.1").validate(payload)
            wire_action = "DataTransfer"
            wire_payload = {"vendorId": PNC_VENDOR, "messageId": action, "data": json.dumps(payload)}
        call = Call(unique_id=str(uuid.uuid4()), action=wire_action, payload=wire_payload)
        await validate_payload(call, self._ocpp_version)
        async with self._call_lock:  # type: ignore[attr-defined]
            await self._send(call.to_json())  # type: ignore[attr-defined]
            response = await self._get_specific_response(call.unique_id, timeout)  # type: ignore[attr-defined]
        if response.message_type_id == MessageType.CallError:
            raise CallErrorReceived(str(response.error_code), str(response.error_description))
        response.action = wire_action
        await validate_payload(response, self._ocpp_version)
        answer: dict[str, Any] = response.payload
        if wrap == "pnc":
            if answer.get("status") != "Accepted":
                return {"dataTransferStatus": answer.get("status")}
            inner = json.loads(answer.get("data") or "{}")
            get_validator(MessageType.CallResult, action, "2.0.1").validate(inner)
            answer = inner
        return answer


def _build(base: type, version: str) -> type:
    namespace: dict[str, Any] = {}
    for action in STATION_ACTIONS[version]:
        async def handler(self: Any, call_unique_id: str, _action: str = action, **kwargs: Any) -> Any:
            return await self._dispatch(_action, call_unique_id, kwargs)

        handler.__name__ = f"on_{action}"
        namespace[f"on_{action}"] = on(action)(handler)
    return type(f"Csms{base.__module__.split('.')[-1]}ChargePoint", (_Mixin, base), namespace)


CHARGE_POINTS: dict[str, type] = {
    "ocpp1.6": _build(CP16, "1.6"),
    "ocpp2.0.1": _build(CP201, "2.0.1"),
    "ocpp2.1": _build(CP21, "2.1"),
}
SUBPROTOCOL_VERSION = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
PREFERENCE = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")


def make_charge_point(subprotocol: str, station: OcppStation, connection: WebSocketAdapter, core: StationCore,
                      notify: Any, executor: Any, timeout: float) -> Any:
    cp = CHARGE_POINTS[subprotocol](station.station_id, connection, response_timeout=timeout)
    cp.core = core
    cp.station = station
    cp.notify = notify
    cp.executor = executor
    cp._followup = {}
    cp.tasks = set()
    return cp



# The `ocpp` package names schema failures loosely: a missing required field becomes ProtocolError and any other
# constraint (enum, pattern, minimum) FormatViolation, with the 2.0.1 spelling on 1.6 too. OCPP-J (1.6 §4.2.3,
# 2.0.1 §4.3) defines precise codes, and stations act on them; the cause the package records tells which applies.
_OCCURRENCE = {"1.6": "OccurenceConstraintViolation"}  # 1.6 spells it with one "r"


def callerror_for_version(message: str, version: str) -> str:
    """Rewrite a CALLERROR frame's code to the one OCPP-J of ``version`` prescribes for the recorded cause."""
    try:
        frame = json.loads(message)
        code, details = str(frame[2]), frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
    except (ValueError, IndexError, TypeError):
        return message
    cause = str(details.get("cause", ""))
    new = code
    if code == "ProtocolError" and "is a required property" in cause:
        new = _OCCURRENCE.get(version, "OccurrenceConstraintViolation")
    elif code in ("FormatViolation", "FormationViolation") and " is not one of " in cause:
        new = "PropertyConstraintViolation"
    elif code in ("FormatViolation", "FormationViolation"):
        new = "FormationViolation" if version == "1.6" else "FormatViolation"
    if new == code:
        return message
    frame[2] = new
    return json.dumps(frame, separators=(",", ":"))

__all__ = ["CHARGE_POINTS", "PREFERENCE", "SUBPROTOCOL_VERSION", "CallErrorReceived", "OCPPError",
           "WebSocketAdapter", "make_charge_point"]
