"""``ContractService``: the OCPP-facing entry point for Get15118EVCertificate (Install/Update, -2 and -20).

The OCPP layer (2.0.1/2.1 Get15118EVCertificate, 1.6 DataTransfer ``Get15118EVCertificate``) calls
:meth:`ContractService.handle_get_15118_ev_certificate` and copies the four results into its response. This method
never raises: every problem becomes status ``Failed`` with a reason (and the ISO 15118 ResponseCode in
:attr:`EvCertificateResult.response_code`); unexpected exceptions are logged by type only.

Routing: a station or eMSP routed to an upstream pool (:mod:`pki.iso15118.upstream`) gets the pool's answer
unchanged; everything else is served locally (MO CA + CPS, :mod:`pki.iso15118.contract`), which needs the EXI
codec — without it the answer is Failed with a reason saying so.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pki.authority import Authority
from pki.errors import PkiError
from pki.iso15118.contract import NAMESPACES, ContractInstaller
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry
from pki.iso15118.trust import TrustStore
from pki.iso15118.upstream import ProviderRouter, UpstreamError
from pki.iso15118.xmldsig import ExiCodec
from pki.revocation import Listener
from pki.store import repo

log = logging.getLogger("pnc.contracts")

# OCPP schema limits (standards brief §0): exiRequest / exiResponse base64 characters
LIMITS = {"2.0.1": (5600, 7500), "2.1": (11000, 17000), "1.6": (5600, 7500)}
NO_CODEC = ("ISO 15118 EXI codec is not available in this build: local contract installation is disabled "
            "(route this station to an upstream contract pool, or install the EXI codec)")

# statusInfo.reasonCode is at most 20 characters in OCPP 2.0.1
_SHORT = {
    "FAILED_SignatureError": "SignatureError",
    "FAILED_CertChainError": "CertChainError",
    "FAILED_CertificateExpired": "CertificateExpired",
    "FAILED_CertificateRevoked": "CertificateRevoked",
    "FAILED_NoCertificateAvailable": "NoCertAvailable",
    "FAILED_ContractCanceled": "ContractCanceled",
}


@dataclass(frozen=True)
class EvCertificateResult:
    status: str  # "Accepted" | "Failed"
    exi_response: str  # base64; "" when there is nothing to forward
    reason: str | None = None  # one human line for statusInfo.additionalInfo
    remaining_contracts: int | None = None  # OCPP 2.1 remainingContracts (-20)
    response_code: str = "OK"  # the ISO 15118 ResponseCode (FAILED_* on failure)
    provider: str = "local"

    @property
    def reason_code(self) -> str | None:
        """A statusInfo.reasonCode (<= 20 characters) for Failed answers."""
        if self.status == "Accepted":
            return None
        return _SHORT.get(self.response_code, self.response_code[:20] if self.response_code != "FAILED" else "Failed")

    def as_tuple(self) -> tuple[str, str, str | None, int | None]:
        return self.status, self.exi_response, self.reason, self.remaining_contracts


def _failed(code: str, message: str, provider: str = "local", exi: str = "") -> EvCertificateResult:
    return EvCertificateResult("Failed", exi, f"{code}: {message}", None, code, provider)


class ContractService:
    def __init__(self, authority: Authority, *, registry: ContractRegistry, trust: TrustStore, cps: CpsProvisioner,
                 codec: ExiCodec | None, router: ProviderRouter | None = None, organization: str = "pnc-pki",
                 country: str = "DE", require_contract_root_match: bool = False,
                 revocation_listeners: tuple[Listener, ...] = ()) -> None:
        self.authority = authority
        self.registry = registry
        self.trust = trust
        self.cps = cps
        self.codec = codec
        self.router = router or ProviderRouter()
        self.installer = ContractInstaller(authority, registry, trust, cps, codec, organization=organization,
                                           country=country,
                                           require_contract_root_match=require_contract_root_match,
                                           revocation_listeners=revocation_listeners) \
            if codec is not None else None

    def handle_get_15118_ev_certificate(
        self,
        station_id: str,
        iso15118_schema_version: str,
        action: str,
        exi_request_b64: str,
        *,
        maximum_contract_certificate_chains: int | None = None,
        prioritized_emaids: Sequence[str] | None = None,
        ocpp_version: str = "2.0.1",
    ) -> tuple[str, str, str | None, int | None]:
        """(status, exiResponse, reason, remainingContracts) for a Get15118EVCertificateRequest."""
        return self.handle(station_id, iso15118_schema_version, action, exi_request_b64,
                           maximum_contract_certificate_chains=maximum_contract_certificate_chains,
                           prioritized_emaids=prioritized_emaids, ocpp_version=ocpp_version).as_tuple()

    def handle_ocpp_request(self, *, station: object, iso15118_schema_version: str, action: str, exi_request: str,
                            payload: Mapping[str, Any] | None = None,
                            ocpp_version: str | None = None) -> dict[str, Any]:
        """The OCPP endpoint's entry point (api/ocpp/core.py): the Get15118EVCertificateResponse payload for
        ``station`` (anything with ``station_id`` and optionally ``ocpp_version``).

        ``ocpp_version`` is the version of the connection the request came on ("2.1", "2.0.1", "1.6" for the
        DataTransfer wrapper); it wins over the station record's, which may still be the previous connection's.
        ``remainingContracts`` is only sent to OCPP 2.1 stations (2.0.1 schemas forbid unknown fields).
        """
        station_id = str(getattr(station, "station_id", station))
        version = _ocpp_version(ocpp_version or getattr(station, "ocpp_version", None))
        p = dict(payload or {})
        chains = p.get("maximumContractCertificateChains")
        emaids = p.get("prioritizedEMAIDs")
        r = self.handle(station_id, iso15118_schema_version, action, exi_request,
                        maximum_contract_certificate_chains=chains if isinstance(chains, int) else None,
                        prioritized_emaids=[str(e) for e in emaids] if isinstance(emaids, list) else None,
                        ocpp_version=version)
        answer: dict[str, Any] = {"status": r.status, "exiResponse": r.exi_response}
        if r.status != "Accepted":
            answer["statusInfo"] = {"reasonCode": r.reason_code or "Failed",
                                    "additionalInfo": (r.reason or "")[:1024 if version == "2.1" else 512]}
        if version == "2.1" and r.remaining_contracts is not None:
            answer["remainingContracts"] = r.remaining_contracts
        return answer

    def handle(
        self,
        station_id: str,
        iso15118_schema_version: str,
        action: str,
        exi_request_b64: str,
        *,
        maximum_contract_certificate_chains: int | None = None,
        prioritized_emaids: Sequence[str] | None = None,
        ocpp_version: str = "2.0.1",
    ) -> EvCertificateResult:
        try:
            result = self._handle(station_id, iso15118_schema_version, action, exi_request_b64,
                                  maximum_contract_certificate_chains, prioritized_emaids or (), ocpp_version)
        except PkiError as exc:
            code = exc.code if exc.code.startswith("FAILED") else "FAILED"
            result = _failed(code, exc.message)
        except Exception as exc:
            log.error("Get15118EVCertificate failed unexpectedly: %s", type(exc).__name__)
            result = _failed("FAILED", "internal error while processing the certificate request")
        if result.status != "Accepted":
            repo.add_audit(self.authority.db, repo.audit_event(
                f"station:{station_id}", f"contract.{action.lower()[:16]}", "failure", target=station_id[:255],
                details={"code": result.response_code, "reason": result.reason, "provider": result.provider}))
        return result

    def _handle(self, station_id: str, namespace: str, action: str, exi_b64: str, max_chains: int | None,
                prioritized: Sequence[str], ocpp_version: str) -> EvCertificateResult:
        if action not in ("Install", "Update"):
            return _failed("FAILED", f"action must be Install or Update, not {action!r}")
        if namespace not in NAMESPACES:
            return _failed("FAILED", f"unsupported iso15118SchemaVersion {namespace!r}")
        max_req, max_res = LIMITS.get(ocpp_version, LIMITS["2.0.1"])
        if len(exi_b64) > max_req:
            return _failed("FAILED", f"exiRequest has {len(exi_b64)} characters, over the {max_req} allowed")
        try:
            exi = base64.b64decode(exi_b64, validate=True)
        except (binascii.Error, ValueError):
            return _failed("FAILED", "exiRequest is not valid base64")
        if not exi:
            return _failed("FAILED", "exiRequest is empty")
        emsp = _emsp_hint(prioritized)
        provider = self.router.route(station_id, emsp)
        if provider is not None:
            return self._upstream(provider.name, lambda: provider.get_signed_contract_data(
                exi_b64, namespace, station_id=station_id), max_res)
        if self.installer is None:
            return _failed("FAILED", NO_CODEC)
        outcome = self.installer.process(exi, namespace, action, station_id=station_id, prioritized=prioritized,
                                         max_chains=max_chains, max_response_bytes=max_res // 4 * 3)
        remaining = outcome.remaining if (max_chains is not None or namespace != _ISO2) else None
        return EvCertificateResult("Accepted", base64.b64encode(outcome.exi).decode(), None, remaining, "OK")

    def _upstream(self, name: str, call: object, max_res: int) -> EvCertificateResult:
        assert callable(call)
        try:
            answer = call()
        except UpstreamError as exc:
            code = exc.code if exc.code.startswith("FAILED") else "FAILED"
            return _failed(code, exc.message, name, exc.exi_response or "")
        if len(answer.exi_response_b64) > max_res:
            return _failed("FAILED", f"the pool's response has {len(answer.exi_response_b64)} characters, over "
                                     f"the {max_res} allowed", name)
        return EvCertificateResult("Accepted", answer.exi_response_b64, None, answer.remaining, "OK", name)


_ISO2 = "urn:iso:15118:2:2013:MsgDef"


def _ocpp_version(value: object) -> str:
    """'ocpp2.0.1' / '2.0.1' / 'ocpp1.6' / '2.1' -> a key of LIMITS (default 2.0.1)."""
    text = str(value or "").lower().removeprefix("ocpp")
    return text if text in LIMITS else "2.0.1"


def _emsp_hint(prioritized: Sequence[str]) -> str | None:
    """The eMSP of the EV's first prioritised EMAID (country + provider ID), for per-eMSP routing."""
    for e in prioritized:
        compact = e.replace("-", "").upper()
        if len(compact) >= 5:
            return compact[:5]
    return None
