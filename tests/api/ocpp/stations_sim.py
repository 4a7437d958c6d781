"""Charging-station simulators built on the `ocpp` package's own ChargePoint (the independent peer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as CP21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from tests.api.ocpp.conftest import basic
from tests.helpers import make_csr, p256

ALGS = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}


def hash_data(cert: x509.Certificate, alg: str = "SHA256") -> dict[str, str]:
    """The station's own computation (RFC 6960 CertID via cryptography), independent of pki.hashdata."""
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, ALGS[alg]).build()
    return {"hashAlgorithm": alg, "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(), "serialNumber": format(cert.serial_number, "x")}


class _Store:
    """What a station keeps: received chains, installed roots, and a knob for the hash algorithm it reports."""

    def _init_store(self, serial: str, org: str, secc: str, report_alg: str = "SHA384") -> None:
        self.serial = serial
        self.org = org
        self.secc = secc
        self.report_alg = report_alg
        self.signed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.roots: dict[str, tuple[str, x509.Certificate]] = {}  # serial hex -> (type, cert)
        self.sign_answers: asyncio.Queue[Any] = asyncio.Queue()
        self.triggered: list[str] = []
        self.inventory_requests = 0  # GetInstalledCertificateIds received (exactly-once delivery checks)

    def csr(self, cert_type: str | None) -> str:
        if cert_type in ("V2GCertificate", "V2G20Certificate") or (cert_type is None and self.secc):
            return make_csr(p256(), CN=self.secc, O=self.org, C="DE", DC="CPO").decode()
        return make_csr(p256(), CN=self.serial, O=self.org).decode()

    def install(self, cert_type: str, pem: str) -> str:
        cert = x509.load_pem_x509_certificate(pem.encode())
        self.roots[format(cert.serial_number, "x")] = (cert_type, cert)
        return "Accepted"

    def installed_ids(self, types: list[str] | None) -> list[dict[str, Any]]:
        return [{"certificateType": t, "certificateHashData": hash_data(c, self.report_alg)}
                for t, c in self.roots.values() if types is None or t in types]

    def delete(self, h: dict[str, str]) -> str:
        h = snake_to_camel_case(h)
        for key, (_t, c) in list(self.roots.items()):
            mine = hash_data(c, h["hashAlgorithm"])
            if {k: v.lower() for k, v in mine.items()} == {k: v.lower() for k, v in h.items()}:
                del self.roots[key]
                return "Accepted"
        return "NotFound"


class Station201(_Store, CP201):
    call_mod: Any = call201

    @on("CertificateSigned")
    async def on_signed(self, certificate_chain: str, **kw: Any) -> Any:
        await self.signed.put({"certificateChain": certificate_chain, **kw})
        return result201.CertificateSigned(status="Accepted")

    @on("TriggerMessage")
    async def on_trigger(self, requested_message: str, **kw: Any) -> Any:
        self.triggered.append(requested_message)
        return result201.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    async def after_trigger(self, requested_message: str, **kw: Any) -> None:
        cert_type = {"SignChargingStationCertificate": "ChargingStationCertificate",
                     "SignV2GCertificate": "V2GCertificate", "SignV2G20Certificate": "V2G20Certificate"}.get(
            requested_message)
        r = await self.call(self.call_mod.SignCertificate(csr=self.csr(cert_type), certificate_type=cert_type))
        await self.sign_answers.put(r)

    @on("InstallCertificate")
    async def on_install(self, certificate_type: str, certificate: str, **kw: Any) -> Any:
        return result201.InstallCertificate(status=self.install(certificate_type, certificate))

    @on("GetInstalledCertificateIds")
    async def on_get_ids(self, certificate_type: list[str] | None = None, **kw: Any) -> Any:
        self.inventory_requests += 1
        items = self.installed_ids(certificate_type)
        if not items:
            return result201.GetInstalledCertificateIds(status="NotFound")
        return result201.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=items)

    @on("DeleteCertificate")
    async def on_delete(self, certificate_hash_data: dict[str, str], **kw: Any) -> Any:
        return result201.DeleteCertificate(status=self.delete(certificate_hash_data))


class Station21(Station201, CP21):  # type: ignore[misc]
    call_mod = call21
    _call = call21
    _call_result = result21
    _ocpp_version = "2.1"

    @on("CertificateSigned")
    async def on_signed(self, certificate_chain: str, **kw: Any) -> Any:
        await self.signed.put({"certificateChain": certificate_chain, **kw})
        return result21.CertificateSigned(status="Accepted")


class Station16(_Store, CP16):
    """1.6 with the security extension and the PnC DataTransfer wrapper."""

    @on("CertificateSigned")
    async def on_signed(self, certificate_chain: str, **kw: Any) -> Any:
        await self.signed.put({"certificateChain": certificate_chain})
        return result16.CertificateSigned(status="Accepted")

    @on("ExtendedTriggerMessage")
    async def on_trigger(self, requested_message: str, **kw: Any) -> Any:
        self.triggered.append(requested_message)
        return result16.ExtendedTriggerMessage(status="Accepted")

    @after("ExtendedTriggerMessage")
    async def after_trigger(self, requested_message: str, **kw: Any) -> None:
        r = await self.call(call16.SignCertificate(csr=self.csr("ChargingStationCertificate")))
        await self.sign_answers.put(r)

    @on("InstallCertificate")
    async def on_install(self, certificate_type: str, certificate: str, **kw: Any) -> Any:
        return result16.InstallCertificate(status=self.install(certificate_type, certificate))

    @on("GetInstalledCertificateIds")
    async def on_get_ids(self, certificate_type: str, **kw: Any) -> Any:
        items = self.installed_ids([certificate_type])
        if not items:
            return result16.GetInstalledCertificateIds(status="NotFound")
        return result16.GetInstalledCertificateIds(status="Accepted",
                                                    certificate_hash_data=[i["certificateHashData"] for i in items])

    @on("DeleteCertificate")
    async def on_delete(self, certificate_hash_data: dict[str, str], **kw: Any) -> Any:
        return result16.DeleteCertificate(status=self.delete(certificate_hash_data))

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None,
                               **kw: Any) -> Any:
        payload = json.loads(data or "{}")
        if message_id == "CertificateSigned":
            await self.signed.put(payload)
            return result16.DataTransfer(status="Accepted", data=json.dumps({"status": "Accepted"}))
        if message_id == "InstallCertificate":
            status = self.install(payload["certificateType"], payload["certificate"])
            return result16.DataTransfer(status="Accepted", data=json.dumps({"status": status}))
        if message_id == "GetInstalledCertificateIds":
            items = self.installed_ids(payload.get("certificateType"))
            answer: dict[str, Any] = {"status": "Accepted", "certificateHashDataChain": items} if items else \
                {"status": "NotFound"}
            return result16.DataTransfer(status="Accepted", data=json.dumps(answer))
        if message_id == "DeleteCertificate":
            status = self.delete(payload["certificateHashData"])
            return result16.DataTransfer(status="Accepted", data=json.dumps({"status": status}))
        if message_id == "TriggerMessage":
            self.triggered.append(payload.get("requestedMessage", ""))
            self._pnc_csr = True
            return result16.DataTransfer(status="Accepted", data=json.dumps({"status": "Accepted"}))
        return result16.DataTransfer(status="UnknownMessageId")

    @after("DataTransfer")
    async def after_data_transfer(self, vendor_id: str, message_id: str | None = None, **kw: Any) -> None:
        if message_id == "TriggerMessage" and getattr(self, "_pnc_csr", False):
            # like libocpp: an accepted PnC TriggerMessage is followed by a wrapped V2G SignCertificate
            self._pnc_csr = False
            data = json.dumps({"csr": self.csr("V2GCertificate"), "certificateType": "V2GCertificate"})
            r = await self.call(call16.DataTransfer(vendor_id="org.openchargealliance.iso15118pnc",
                                                    message_id="SignCertificate", data=data))
            await self.sign_answers.put(r)


CLASSES = {"ocpp2.0.1": Station201, "ocpp2.1": Station21, "ocpp1.6": Station16}


@contextlib.asynccontextmanager
async def connect(url: str, station_id: str, subprotocol: str = "ocpp2.0.1", *, serial: str | None = None,
                  org: str = "Test CPO", secc: str = "DE*PNC*E12345*1", headers: dict[str, str] | None = None,
                  report_alg: str = "SHA384") -> AsyncIterator[Any]:
    async with websockets.connect(f"{url}/{station_id}", subprotocols=[subprotocol],  # type: ignore[list-item]
                                  additional_headers=headers if headers is not None else basic(station_id)) as ws:
        cp = CLASSES[subprotocol](station_id, ws, response_timeout=10)
        cp._init_store(serial or f"SN-{station_id}", org, secc, report_alg)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
