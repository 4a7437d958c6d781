"""The seam between lifecycle jobs and the stations: a small protocol the OCPP outbox is adapted to.

Jobs never talk OCPP themselves. They ask the gateway which stations belong to a hierarchy, enqueue CSMS→station
calls (InstallCertificate, GetInstalledCertificateIds, TriggerMessage, DeleteCertificate) under an *idempotency
key*, and read the station's answer back later by message id. A durable outbox must return the same message id
for the same key, so a job step retried after a crash does not send a second message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from pki.profiles import CertKind


class Hierarchy(enum.StrEnum):
    CSMS = "csms"
    V2G = "v2g"
    MO = "mo"
    OEM = "oem"


ROOT_KIND = {
    Hierarchy.CSMS: CertKind.CSMS_ROOT,
    Hierarchy.V2G: CertKind.V2G_ROOT,
    Hierarchy.MO: CertKind.MO_ROOT,
    Hierarchy.OEM: CertKind.OEM_ROOT,
}

# InstallCertificateUseEnumType / GetCertificateIdUseEnumType value for the root of each hierarchy.
INSTALL_TYPE = {
    Hierarchy.CSMS: "CSMSRootCertificate",
    Hierarchy.V2G: "V2GRootCertificate",
    Hierarchy.MO: "MORootCertificate",
    Hierarchy.OEM: "ManufacturerRootCertificate",  # OCPP 2.1 adds OEMRootCertificate; 2.0.1 has only this one
}

# Station certificates that chain to the root and must be re-issued under the new chain (A02 trigger).
STATION_LEAF = {
    Hierarchy.CSMS: (CertKind.STATION_CLIENT, "SignChargingStationCertificate", "ChargingStationCertificate"),
    Hierarchy.V2G: (CertKind.SECC_LEAF, "SignV2GCertificate", "V2GCertificate"),
}


class CallState(enum.StrEnum):
    PENDING = "pending"  # queued or sent; no answer yet (station offline, or it has not answered)
    ANSWERED = "answered"  # the station returned a CALLRESULT (payload)
    ERROR = "error"  # CALLERROR, timeout or the outbox gave up (error)


@dataclass(frozen=True)
class CallResult:
    state: CallState
    payload: dict[str, Any] | None = None
    error: str | None = None

    @property
    def status(self) -> str | None:
        """The ``status`` field of the response payload (Accepted, Rejected, Failed, NotFound, ...)."""
        return None if self.payload is None else str(self.payload.get("status"))

    def reason(self) -> str:
        if self.state is CallState.ERROR:
            return self.error or "call failed"
        info = (self.payload or {}).get("statusInfo") or {}
        extra = f" ({info.get('reasonCode')}: {info.get('additionalInfo', '')})" if info else ""
        return f"{self.status}{extra}"


@dataclass(frozen=True)
class StationInventory:
    """What the registry knows about a station that matters for trust-store changes."""

    station_id: str
    connected: bool
    additional_root_certificate_check: bool | None = None  # SecurityCtrlr.AdditionalRootCertificateCheck
    hierarchies: frozenset[str] = field(default_factory=frozenset)


class StationGateway(Protocol):
    def stations(self, hierarchy: str) -> list[str]:
        """Station ids whose trust store holds (or should hold) the root of ``hierarchy``."""
        ...

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], job_id: str) -> str:
        """Queue a CSMS→station call; ``job_id`` is the idempotency key (same key → same message id)."""
        ...

    def result(self, message_id: str) -> CallResult: ...

    def inventory(self, station_id: str) -> StationInventory: ...
