"""StationGateway over the durable OCPP outbox (``ocpp_outbox``) and the station registry (``ocpp_station``).

Bind it with ``PNC_LIFECYCLE_GATEWAY=api.lifecycle_gateway:outbox_gateway``. It works at the database level, so
the CLI (a separate process) can drive a rotation while the service delivers: rows are inserted ``pending`` and
the OCPP runtime sends them to connected stations (within ``outbox_tick``) or when a station reconnects.

* Idempotency: the job's key is stored in ``actor`` (``lifecycle:<key>``); a repeated key returns the row that
  already exists instead of inserting a second one.
* ``connected``: the registry's ``last_seen_at`` is within ``CONNECTED_WINDOW`` (the runtime's session table is
  per process).
* AdditionalRootCertificateCheck is not in the registry yet: reported as unknown (the rotation then sends the
  link certificate when ``--link-certificate`` is on).

* OCPP 1.6 stations get 1.6 calls: CSMS/manufacturer roots through the security extension's own messages
  (``CentralSystemRootCertificate``; TriggerMessage becomes ExtendedTriggerMessage ``SignChargePointCertificate``),
  V2G/MO/OEM roots and SECC renewals through the PnC application note's DataTransfer wrapper (the 2.0.1 payload,
  ``wrap="pnc"``). The 1.6 answers are read back in 2.0.1 shape, so the rotation logic sees one protocol.

Note: rows written here bypass ``OcppRuntime.enqueue_command``'s ``check_installable_root``, which accepts only
self-signed roots and would refuse the M05 link certificate.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from api.context import Services
from pki.clock import utc
from pki.errors import NotFound
from pki.lifecycle.gateway import CallResult, CallState, StationInventory
from pki.store import ocpp_repo
from pki.store.ocpp_models import OcppOutbox, OutboxStatus

CONNECTED_WINDOW = dt.timedelta(minutes=10)
OUTBOX_TTL = dt.timedelta(days=7)


class OutboxGateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db

    def _now(self) -> dt.datetime:
        return self.services.authority.clock.now()

    def stations(self, hierarchy: str) -> list[str]:
        out = []
        for st in ocpp_repo.list_stations(self.db, limit=1_000_000):
            if not st.enabled:
                continue
            has_secc = bool(json.loads(st.secc_ids or "[]"))
            if hierarchy == "csms" and st.security_profile >= 2:  # TLS: the station validates the CSMS server
                out.append(st.station_id)
            elif hierarchy in ("v2g", "mo", "oem") and has_secc:  # ISO 15118 stations hold the V2G/MO/OEM roots
                out.append(st.station_id)
        return out

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], job_id: str) -> str:
        actor = f"lifecycle:{job_id}"[:128]
        for row in ocpp_repo.list_outbox(self.db, station_id=station_id, limit=10_000):
            if row.actor == actor and row.id is not None:
                return str(row.id)
        station = ocpp_repo.get_station(self.db, station_id)
        if station is None:
            raise NotFound(f"no station {station_id!r} in the registry")
        wrap = None
        if station.ocpp_version == "1.6":
            action, payload, wrap = self._for_16(station_id, action, payload)
        now = self._now()
        row = OcppOutbox(station_id=station_id, action=action, payload=json.dumps(payload), wrap=wrap,
                         delivery="csms" if station.integration == "csms" else "direct", actor=actor,
                         next_attempt_at=now, expires_at=now + OUTBOX_TTL)
        stored = ocpp_repo.enqueue(self.db, [row])[0]
        return str(stored.id)

    def result(self, message_id: str) -> CallResult:
        row = ocpp_repo.get_outbox(self.db, int(message_id))
        if row is None:
            return CallResult(CallState.ERROR, error="outbox row disappeared")
        if row.status == OutboxStatus.ANSWERED:
            answer = json.loads(row.response or "{}")
            if row.wrap is None and row.action == "GetInstalledCertificateIds" and "certificateHashData" in answer:
                # 1.6 security extension: a flat list for the one requested type -> the 2.0.1 chain entries
                requested = json.loads(row.payload).get("certificateType")
                answer = {"status": answer.get("status"), "certificateHashDataChain": [
                    {"certificateType": TYPES_FROM_16.get(requested, requested), "certificateHashData": h}
                    for h in answer["certificateHashData"]]}
            return CallResult(CallState.ANSWERED, payload=answer)
        if row.status in (OutboxStatus.FAILED, OutboxStatus.EXPIRED):
            return CallResult(CallState.ERROR, error=f"{row.status}: {row.error or ''}".strip())
        return CallResult(CallState.PENDING)

    def inventory(self, station_id: str) -> StationInventory:
        st = ocpp_repo.get_station(self.db, station_id)
        if st is None:
            raise NotFound(f"no station {station_id!r} in the registry")
        seen = st.last_seen_at
        connected = seen is not None and self._now() - utc(seen) < CONNECTED_WINDOW
        return StationInventory(station_id, connected, None)

    def _for_16(self, station_id: str, action: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
        """(action, payload, wrap) of a 2.0.1 lifecycle call for an OCPP 1.6 station."""
        if action == "InstallCertificate":
            native = TYPES_TO_16.get(str(payload.get("certificateType")))
            if native is not None:
                return action, {**payload, "certificateType": native}, None
            return action, payload, "pnc"
        if action == "GetInstalledCertificateIds":
            types = payload.get("certificateType") or []
            wanted = types[0] if isinstance(types, list) and types else types
            native = TYPES_TO_16.get(str(wanted))
            if native is not None:  # the 1.6 message asks for exactly one type
                return action, {"certificateType": native}, None
            return action, payload, "pnc"
        if action == "TriggerMessage":
            if payload.get("requestedMessage") == "SignChargingStationCertificate":
                return "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}, None
            return action, payload, "pnc"
        if action == "DeleteCertificate":
            return action, payload, self._delete_wrap(station_id, payload.get("certificateHashData") or {})
        return action, payload, None

    def _delete_wrap(self, station_id: str, h: dict[str, Any]) -> str | None:
        """Delete a certificate the way it was installed: a V2G/MO/OEM root went in through the PnC wrapper."""
        serial = ocpp_repo.inventory_serial(str(h.get("serialNumber", "")))
        for entry in ocpp_repo.list_inventory(self.db, station_id):
            if entry.serial_number == serial and \
                    entry.issuer_key_hash.lower() == str(h.get("issuerKeyHash", "")).lower():
                native = entry.certificate_type in TYPES_FROM_16 or entry.certificate_type in TYPES_TO_16
                return None if native else "pnc"
        return None


# 2.0.1 InstallCertificateUse values the 1.6 security extension can carry natively, and back
TYPES_TO_16 = {"CSMSRootCertificate": "CentralSystemRootCertificate",
               "ManufacturerRootCertificate": "ManufacturerRootCertificate"}
TYPES_FROM_16 = {v: k for k, v in TYPES_TO_16.items()}


def outbox_gateway(services: Services) -> OutboxGateway:
    return OutboxGateway(services)
