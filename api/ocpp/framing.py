"""OCPP-J framing checks the `ocpp` package leaves to us.

The package answers schema violations itself, but sends nothing for a frame that is not JSON, not an OCPP array,
or of an unknown message type, and it maps unknown actions the other way round from OCPP-J (and not at all for
2.1). We classify each incoming text frame first and answer such frames with a CALLERROR, keeping the connection.
OCPP-J: NotImplemented = action not known; NotSupported = known but not supported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ocpp.v16.enums import Action as Action16
from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action as Action201

_KNOWN = {
    "1.6": {a.value for a in Action16},
    "2.0.1": {a.value for a in Action201},
    "2.1": {a.value for a in Action21},
}


@dataclass(frozen=True)
class FrameError:
    unique_id: str
    code: str
    description: str

    def to_json(self) -> str:
        return json.dumps([4, self.unique_id, self.code, self.description, {}])


def _format_violation(version: str) -> str:
    return "FormationViolation" if version == "1.6" else "FormatViolation"  # 1.6 spells it so


def check_frame(raw: str | bytes | None, *, version: str, max_bytes: int, routes: dict[str, Any]) -> FrameError | None:
    """None if the `ocpp` package can take the frame; else the CALLERROR to send."""
    if raw is None or isinstance(raw, bytes):
        return FrameError("-1", _format_violation(version), "OCPP-J uses text frames")
    if len(raw) > max_bytes:
        return FrameError("-1", _format_violation(version), f"frame exceeds {max_bytes} bytes")
    try:
        msg = json.loads(raw)
    except ValueError:
        return FrameError("-1", _format_violation(version), "frame is not valid JSON")
    if not isinstance(msg, list) or not msg:
        return FrameError("-1", "ProtocolError", "frame is not an OCPP-J array")
    unique_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) and len(msg[1]) <= 36 else "-1"
    type_id = msg[0]
    if type_id not in (2, 3, 4) or isinstance(type_id, bool):
        code = "PropertyConstraintViolation" if version == "1.6" else "MessageTypeNotSupported"
        return FrameError(unique_id, code, f"message type {type_id!r} is not supported")
    if unique_id == "-1" and not (len(msg) > 1 and msg[1] == "-1"):
        return FrameError("-1", "ProtocolError", "message id missing, not a string, or longer than 36 characters")
    if type_id == 2:
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            return FrameError(unique_id, "ProtocolError", "CALL must be [2, id, action, {payload}]")
        action = msg[2]
        if action not in routes:
            if action in _KNOWN.get(version, set()):
                return FrameError(unique_id, "NotSupported", f"{action} is not supported by this CSMS")
            return FrameError(unique_id, "NotImplemented", f"{action} is not a known OCPP {version} action")
    return None
