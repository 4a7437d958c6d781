"""CSMS-side handling of station→CSMS requests, independent of transport.

The WebSocket endpoint (a station connected to pnc-pki) and the CSMS-integration REST API (a CSMS forwarding its
stations' messages) both call :meth:`StationCore.handle` with an already schema-validated camelCase payload and get
the camelCase response payload back. Work that must not delay the answer (signing a CSR) is returned as a
*follow-up* the caller starts after the answer was sent (A02/A03: answer SignCertificate at once, send
CertificateSigned later).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from api import lifecycle
from api.context import Services
from api.ocpp.settings import OcppSettings
from pki import contract_auth, stations
from pki.errors import InvalidRequest, PkiError
from pki.hashdata import CertificateHashData
from pki.profiles import CertKind, Generation
from pki.store import ocpp_repo, repo
from pki.store.ocpp_models import OcppOutbox, OcppStation

log = logging.getLogger("pnc.ocpp")

PNC_VENDOR = "org.openchargealliance.iso15118pnc"
PNC_STATION_MESSAGES = ("Authorize", "SignCertificate", "Get15118EVCertificate", "GetCertificateStatus")
OCSP_RESULT_MAX = {"1.6": 5500, "2.0.1": 5500, "2.1": 18000}
EXI_RESPONSE_MAX = {"1.6": 7500, "2.0.1": 7500, "2.1": 17000}
_HASHES = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}


def now_iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_info(exc: PkiError | str, message: str | None = None) -> dict[str, str]:
    """OCPP statusInfo: reasonCode ≤ 20 characters, additionalInfo ≤ 512 (2.0.1)."""
    code = exc.code if isinstance(exc, PkiError) else exc
    text = exc.message if isinstance(exc, PkiError) else (message or "")
    info = {"reasonCode": code[:20]}
    if text:
        info["additionalInfo"] = text[:512]
    return info


@dataclass
class Result:
    payload: dict[str, Any]
    followup: Callable[[], None] | None = None  # run in a worker thread after the answer went out


@dataclass
class Channel:
    """How a follow-up call reaches the station: over its WebSocket or via the CSMS (webhook/poll)."""

    delivery: str = "direct"  # direct | csms
    wrap: str | None = None  # "pnc": OCPP 1.6 DataTransfer wrapper
    notify: Callable[[str], None] = field(default=lambda _sid: None)  # wake the dispatcher for that station


class StationCore:
    def __init__(self, services: Services, settings: OcppSettings) -> None:
        self.services = services
        self.settings = settings
        self._last_seen: dict[str, dt.datetime] = {}
        # where lifecycle bookkeeping runs: inline by default; the runtime hands it to its lifecycle thread so that
        # it never delays a CertificateSigned (ordered: one thread, issued before answered)
        self.defer: Callable[[Callable[[], None]], None] = lambda fn: fn()

    @property
    def authority(self) -> Any:
        return self.services.authority

    def now(self) -> dt.datetime:
        now: dt.datetime = self.services.authority.clock.now()
        return now

    # --- dispatch ---------------------------------------------------------------------------------------

    def handle(self, station: OcppStation, version: str, action: str, payload: dict[str, Any],
               channel: Channel) -> Result:
        """Blocking (database, crypto): call it from a worker thread, never from the event loop."""
        method = getattr(self, f"on_{action}", None)
        if method is None:
            raise InvalidRequest(f"{action} is not handled by pnc-pki", code="NotSupported")
        result: Result = method(station, version, payload, channel)
        return result

    # --- minimal core -----------------------------------------------------------------------------------

    def on_BootNotification(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        now = self.now()
        serial = (p.get("chargingStation", {}).get("serialNumber") if version != "1.6"
                  else p.get("chargeBoxSerialNumber") or p.get("chargePointSerialNumber"))
        ocpp_repo.add_event(self.services.db, station.station_id, "boot", p.get("reason"), p)
        ocpp_repo.update_station(self.services.db, station.station_id, boot_info=json.dumps(p), last_seen_at=now)
        status = "Accepted"
        if serial is not None and serial != station.serial_number:
            # A station is confined to its registered identity, also in what it claims about itself.
            status = "Rejected"
            repo.add_audit(self.services.db, repo.audit_event(f"station:{station.station_id}", "station.boot",
                                                              "refused", target=station.station_id,
                                                              details={"reason": "serial mismatch"}))
        return Result({"currentTime": now_iso(now), "interval": self.settings.heartbeat_interval, "status": status})

    def on_Heartbeat(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        now = self.now()
        self.touch(station.station_id, now)
        return Result({"currentTime": now_iso(now)})

    def touch(self, station_id: str, now: dt.datetime, **changes: Any) -> None:
        """Record last-seen at most once a minute per station: 10,000 heartbeating stations ≠ 10,000 writes."""
        last = self._last_seen.get(station_id)
        if changes or last is None or now - last >= dt.timedelta(seconds=60):
            self._last_seen[station_id] = now
            ocpp_repo.update_station(self.services.db, station_id, last_seen_at=now, **changes)

    def on_StatusNotification(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        ocpp_repo.add_event(self.services.db, station.station_id, "status",
                            p.get("connectorStatus") or p.get("status"), p)
        return Result({})

    def on_NotifyEvent(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        ocpp_repo.add_event(self.services.db, station.station_id, "notify", None, p)
        return Result({})

    def on_SecurityEventNotification(self, station: OcppStation, version: str, p: dict[str, Any],
                                     ch: Channel) -> Result:
        ocpp_repo.add_event(self.services.db, station.station_id, "security", p.get("type"), p)
        # InvalidChargingStationCertificate (1.6: InvalidChargePointCertificate) marks the new certificate rejected
        lifecycle_hook(lifecycle.on_security_event, self.services, station.station_id, str(p.get("type", "")),
                       p.get("techInfo") or p.get("techinfo"), _parse_time(p.get("timestamp")))
        return Result({})

    # --- A02/A03 SignCertificate --------------------------------------------------------------------------

    def on_SignCertificate(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        cert_type = p.get("certificateType")
        if version == "1.6" and ch.wrap == "pnc" and cert_type is None:
            cert_type = "V2GCertificate"  # the PnC note's SignCertificate is the SECC certificate
        semantic = "2.0.1" if ch.wrap == "pnc" else version
        try:
            plan = stations.plan_sign(self.authority, station, p["csr"], cert_type, version=semantic,
                                      hash_root=p.get("hashRootCertificate"))
        except PkiError as exc:
            repo.add_audit(self.services.db, repo.audit_event(
                f"station:{station.station_id}", "ocpp.sign_certificate", "refused", target=station.station_id,
                details={"reason": exc.code, "message": exc.message, "type": cert_type}))
            answer: dict[str, Any] = {"status": "Rejected"}
            if version != "1.6" or ch.wrap == "pnc":
                answer["statusInfo"] = status_info(exc)
            return Result(answer)
        request_id = p.get("requestId")
        est = self._est_for(station.station_id) if plan.kind is CertKind.SECC_LEAF else None

        def issue() -> None:
            try:
                if est is not None:  # routed to an upstream EST CA (PNC_CONTRACT_ROUTING "est")
                    chain_pem = self._enroll_upstream(est, station, p["csr"], plan.generation)
                else:
                    issued = self.authority.issue_from_csr(
                        p["csr"], plan.kind, generation=plan.generation, issuer=plan.issuer, expect=plan.expect,
                        owner=station.station_id, actor=f"station:{station.station_id}")
                    chain_pem = issued.chain_pem()
                    record_id = issued.record.id
                    if record_id is not None:  # the lifecycle follows it: sent → accepted → in use
                        use = "V2GCertificate" if plan.kind is CertKind.SECC_LEAF else "ChargingStationCertificate"
                        self.defer(lambda: lifecycle_hook(lifecycle.on_certificate_issued, self.services,
                                                          station.station_id, record_id, use))
            except PkiError as exc:  # accepted, then the CA refused: the station never learns it; tell operators
                ocpp_repo.add_event(self.services.db, station.station_id, "sign-failed", exc.code,
                                    {"message": exc.message, "certificateType": cert_type})
                return
            signed: dict[str, Any] = {"certificateChain": chain_pem}
            if plan.certificate_type is not None and (version != "1.6" or ch.wrap == "pnc"):
                signed["certificateType"] = plan.certificate_type  # A02.FR.14: echo the type
            if request_id is not None and version == "2.1":
                signed["requestId"] = request_id
            self.enqueue(station.station_id, "CertificateSigned", signed, ch, actor=f"station:{station.station_id}")

        return Result({"status": "Accepted"}, followup=issue)

    def _est_for(self, station_id: str) -> Any:
        """The upstream EST CA this station's SECC certificates come from, or None for our CPO Sub-CA 2."""
        try:
            router = getattr(getattr(self.services, "contracts", None), "router", None)
            return router.route_est(station_id) if router is not None else None
        except PkiError as exc:  # misconfigured routing: sign locally, and say so
            log.error("EST routing for %s failed (%s); signing locally", station_id, exc.code)
            return None

    def _enroll_upstream(self, est: Any, station: OcppStation, csr: str, generation: Generation) -> str:
        """simpleenroll at the upstream EST CA (the station's CSR was checked by plan_sign); PEM chain, leaf first."""
        certs = est.enroll_secc(csr, iso15118_20=generation is Generation.ISO15118_20)
        leaf = certs[0]
        repo.add_audit(self.services.db, repo.audit_event(
            f"station:{station.station_id}", "ocpp.sign_certificate.upstream", "success", target=station.station_id,
            details={"est": est.name, "serial": format(leaf.serial_number, "x"),
                     "issuer": leaf.issuer.rfc4514_string()[:255]}))
        return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], ch: Channel, *,
                actor: str) -> OcppOutbox:
        now = self.now()
        row = OcppOutbox(station_id=station_id, action=action, payload=json.dumps(payload), wrap=ch.wrap,
                         delivery=ch.delivery, actor=actor, next_attempt_at=now,
                         expires_at=now + dt.timedelta(hours=self.settings.outbox_ttl_hours))
        stored = ocpp_repo.enqueue(self.services.db, [row])[0]
        ch.notify(station_id)
        return stored

    # --- M06 GetCertificateStatus -------------------------------------------------------------------------

    def on_GetCertificateStatus(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        data = dict(p["ocspRequestData"])
        responder = str(data.pop("responderURL", ""))
        limit = OCSP_RESULT_MAX.get("2.0.1" if ch.wrap == "pnc" else version, 5500)
        try:
            hd = CertificateHashData.from_ocpp(data)
        except PkiError as exc:
            return Result({"status": "Failed", "statusInfo": status_info(exc)})
        issuers = repo.find_issuers(self.services.db, hd.hash_algorithm.value, hd.issuer_name_hash, hd.issuer_key_hash)
        if issuers:
            responder_service = getattr(self.services, "ocsp", None)
            if responder_service is None:
                return Result({"status": "Failed", "statusInfo": status_info(
                    "OcspUnavailable", "the local OCSP responder is not configured in this deployment")})
            try:
                der = bytes(responder_service.respond_to_hash_data(hd))
                status = x509_ocsp.load_der_ocsp_response(der).response_status
            except PkiError as exc:
                return Result({"status": "Failed", "statusInfo": status_info(exc)})
            except ValueError:
                return Result({"status": "Failed", "statusInfo": status_info("OcspError", "responder failed")})
            if status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
                # unauthorized / tryLater are valid OCSP answers but not a status the station can staple
                return Result({"status": "Failed", "statusInfo": status_info(
                    f"Ocsp{status.name.title().replace('_', '')}"[:20], "local responder did not answer good/revoked")})
            return self._ocsp_result(der, limit)
        if responder in self.settings.upstream_ocsp_responders:
            return self._forward_ocsp(hd, responder, limit)
        return Result({"status": "Failed", "statusInfo": status_info(
            "UnknownIssuer", "issuer is not ours and the responder URL is not on the operator allow-list")})

    @staticmethod
    def _ocsp_result(der: bytes, limit: int) -> Result:
        encoded = base64.b64encode(der).decode()
        if len(encoded) > limit:
            return Result({"status": "Failed", "statusInfo": status_info("TooLarge", "OCSP response too large")})
        return Result({"status": "Accepted", "ocspResult": encoded})

    def _forward_ocsp(self, hd: CertificateHashData, url: str, limit: int) -> Result:
        request = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            bytes.fromhex(hd.issuer_name_hash), bytes.fromhex(hd.issuer_key_hash), int(hd.serial_number, 16),
            _HASHES[hd.hash_algorithm.ocpp]).build()
        try:
            res = httpx.post(url, content=request.public_bytes(serialization_der()), timeout=5.0,
                             headers={"content-type": "application/ocsp-request"}, follow_redirects=False)
            x509_ocsp.load_der_ocsp_response(res.content)
        except (httpx.HTTPError, ValueError):
            return Result({"status": "Failed", "statusInfo": status_info("UpstreamFailed",
                                                                         "upstream OCSP responder failed")})
        return self._ocsp_result(res.content, limit)

    # --- C07 Authorize --------------------------------------------------------------------------------------

    def on_Authorize(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        id_token = p.get("idToken", {})
        ocsp_service = getattr(self.services, "ocsp", None)
        status_of = contract_auth.db_status(self.authority)
        if ocsp_service is not None and hasattr(ocsp_service, "status_of_hash_data"):
            def status_of(h: CertificateHashData) -> str:  # the OCSP service's answer (cached, same rules)
                answer = ocsp_service.status_of_hash_data(h)
                return str(answer.cert_status or "unknown") if answer.successful else "unknown"
        outcome = contract_auth.authorize(self.authority, str(id_token.get("idToken", "")),
                                          certificate_pem=p.get("certificate"),
                                          hash_data=p.get("iso15118CertificateHashData"), status_of=status_of,
                                          now=self.now(), trust=self._trust_store())
        ocpp_repo.add_event(self.services.db, station.station_id, "authorize", outcome.certificate_status,
                            {"idToken": id_token.get("idToken"), "reason": outcome.reason})
        return Result({"idTokenInfo": {"status": outcome.id_token_status},
                       "certificateStatus": outcome.certificate_status})

    def _trust_store(self) -> Any:
        """The contract service's trust store (imported MO/V2G roots, cached); None -> contract_auth builds one."""
        try:
            contracts = getattr(self.services, "contracts", None)
        except PkiError:  # contract service misconfigured: Authorize still works with a fresh store
            return None
        return getattr(contracts, "trust", None)

    # --- M01/M02 Get15118EVCertificate ----------------------------------------------------------------------

    def on_Get15118EVCertificate(self, station: OcppStation, version: str, p: dict[str, Any],
                                 ch: Channel) -> Result:
        contracts = getattr(self.services, "contracts", None)
        if contracts is None:
            # exiResponse is required even on Failed; an empty string is schema-valid (no minLength) and carries
            # no EXI the station could mistake for a CertificateInstallationRes.
            return Result({"status": "Failed", "exiResponse": "",
                           "statusInfo": status_info("NoContractService",
                                                     "contract certificate service is not configured")})
        payload = dict(p)
        # The ocpp package's camel-case round trip of the handler kwargs turns prioritizedEMAIDs into
        # "prioritizedEmaiDs"; give the contract service the schema's name back.
        for odd in ("prioritizedEmaiDs", "prioritizedEmaids"):
            if odd in payload and "prioritizedEMAIDs" not in payload:
                payload["prioritizedEMAIDs"] = payload.pop(odd)
        try:
            answer: dict[str, Any] = contracts.handle_ocpp_request(
                station=station, iso15118_schema_version=p["iso15118SchemaVersion"], action=p["action"],
                exi_request=p["exiRequest"], payload=payload, ocpp_version=version)
        except PkiError as exc:
            return Result({"status": "Failed", "exiResponse": "", "statusInfo": status_info(exc)})
        return Result(answer)

    # --- OCPP 1.6 PnC application note: DataTransfer --------------------------------------------------------

    def on_DataTransfer(self, station: OcppStation, version: str, p: dict[str, Any], ch: Channel) -> Result:
        from api.ocpp.schema_formats import get_validator

        if p.get("vendorId") != PNC_VENDOR:
            return Result({"status": "UnknownVendorId"})
        message_id = p.get("messageId")
        if message_id not in PNC_STATION_MESSAGES:
            return Result({"status": "UnknownMessageId"})
        try:
            inner = json.loads(p.get("data") or "")
            get_validator(2, str(message_id), "2.0.1").validate(inner)
        except Exception:
            return Result({"status": "Rejected", "data": json.dumps({"error": "data is not a valid 2.0.1 payload"})})
        wrapped = Channel(delivery=ch.delivery, wrap="pnc", notify=ch.notify)
        result = self.handle(station, "1.6", str(message_id), inner, wrapped)
        return Result({"status": "Accepted", "data": json.dumps(result.payload)}, result.followup)


def lifecycle_hook(hook: Callable[..., None], *args: Any) -> None:
    """Call one lifecycle hook; its failure is logged and never costs the station its OCPP answer."""
    try:
        hook(*args)
    except Exception as exc:  # the OCPP flow must go on; operators see the log line
        log.error("lifecycle hook %s failed: %s: %s", getattr(hook, "__name__", hook), type(exc).__name__,
                  str(exc)[:200])


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def serialization_der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
