"""A simulated charging-station fleet behind a :class:`~pki.lifecycle.gateway.StationGateway`.

Used by tests, ``--dry-run`` demonstrations and the crash test (its state can live in a JSON file, so a killed
process and the one that resumes see the same fleet). The stations behave like the OCPP 2.0.1 text and libocpp:

* InstallCertificate: with AdditionalRootCertificateCheck a new CSMS root is accepted only if its signature
  verifies with an installed CSMS root (M05, whitepaper M05.FR.08-13); a self-signed replacement is Rejected.
* GetInstalledCertificateIds answers with the hash algorithm the station prefers (SHA256/384/512, M03 / OCTT
  TC_M_12) and DeleteCertificate only matches hash data in *that* algorithm (M04.FR.07); deleting the last CSMS
  root is refused (whitepaper M04.FR.06).
* TriggerMessage Sign*Certificate: the station makes a key and CSR, the CSMS side signs it, the station checks the
  returned chain against its installed roots (A02.FR.06) and, for the client certificate, reconnects with it.
* Offline stations keep their messages queued in the outbox until they reconnect.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.hashdata import CertificateHashData, HashAlgorithm, certificate_hash_data
from pki.lifecycle.gateway import CallResult, CallState, StationInventory

ROOT_TYPES = ("CSMSRootCertificate", "V2GRootCertificate", "MORootCertificate", "ManufacturerRootCertificate")


class SimCsms(Protocol):
    """The CSMS side the simulated stations talk back to (SignCertificate, CertificateSigned result, reconnect)."""

    def sign(self, station_id: str, csr_pem: str, certificate_type: str) -> tuple[str, int] | None: ...

    def signed_result(self, station_id: str, certificate_id: int, status: str) -> None: ...

    def connected(self, station_id: str, certificate: x509.Certificate) -> None: ...


@dataclass
class InstalledRoot:
    certificate_type: str
    pem: str
    hash_data: dict[str, str]  # as computed at installation, in the station's algorithm


@dataclass
class SimStation:
    station_id: str
    online: bool = True
    arcc: bool = False  # SecurityCtrlr.AdditionalRootCertificateCheck
    hash_algorithm: str = "SHA256"
    hierarchies: list[str] = field(default_factory=lambda: ["csms", "v2g"])
    organization: str = "Test CPO"
    secc_id: str = ""
    roots: list[InstalledRoot] = field(default_factory=list)
    certificates: dict[str, str] = field(default_factory=dict)  # certificateType -> chain PEM
    reject_install: bool = False  # simulate a full certificate store


@dataclass
class SimMessage:
    message_id: str
    station_id: str
    action: str
    payload: dict[str, Any]
    key: str
    response: dict[str, Any] | None = None
    error: str | None = None


class SimulatedFleet:
    def __init__(self, state_file: Path | None = None) -> None:
        self.state_file = state_file
        self.fleet: dict[str, SimStation] = {}
        self.messages: dict[str, SimMessage] = {}
        self.by_key: dict[str, str] = {}
        self.csms: SimCsms | None = None
        self._lock = threading.RLock()
        if state_file is not None and state_file.exists():
            self._load()

    # --- fleet set-up ------------------------------------------------------------------------------------

    def add_station(self, station: SimStation) -> SimStation:
        with self._lock:
            self.fleet[station.station_id] = station
            self._save()
            return station

    def install_root_directly(self, station_id: str, certificate_type: str, cert: x509.Certificate,
                              issuer: x509.Certificate | None = None) -> None:
        """Factory provisioning: put a root into a station's store without OCPP."""
        st = self.fleet[station_id]
        alg = HashAlgorithm.from_ocpp(st.hash_algorithm)
        hd = certificate_hash_data(cert, issuer, alg).to_ocpp()
        st.roots.append(InstalledRoot(certificate_type, _pem(cert), hd))
        self._save()

    def set_online(self, station_id: str, online: bool) -> None:
        """Connect/disconnect; on reconnect the outbox delivers everything that was queued."""
        with self._lock:
            self.fleet[station_id].online = online
            self._save()
            if online:
                self._flush(station_id)

    # --- StationGateway --------------------------------------------------------------------------------

    def stations_for(self, hierarchy: str) -> list[str]:
        return sorted(s.station_id for s in self.fleet.values() if hierarchy in s.hierarchies)

    def stations(self, hierarchy: str) -> list[str]:
        return self.stations_for(hierarchy)

    def enqueue(self, station_id: str, action: str, payload: dict[str, Any], job_id: str) -> str:
        with self._lock:
            if job_id in self.by_key:
                return self.by_key[job_id]
            mid = f"m{len(self.messages) + 1}"
            self.messages[mid] = SimMessage(mid, station_id, action, json.loads(json.dumps(payload)), job_id)
            self.by_key[job_id] = mid
            self._save()
            if self.fleet[station_id].online:
                self._deliver(self.messages[mid])
            return mid

    def result(self, message_id: str) -> CallResult:
        msg = self.messages[message_id]
        if msg.error is not None:
            return CallResult(CallState.ERROR, error=msg.error)
        if msg.response is None:
            return CallResult(CallState.PENDING)
        return CallResult(CallState.ANSWERED, payload=msg.response)

    def inventory(self, station_id: str) -> StationInventory:
        st = self.fleet[station_id]
        return StationInventory(station_id, st.online, st.arcc, frozenset(st.hierarchies))

    # --- observation helpers for tests -----------------------------------------------------------------

    def sent(self, station_id: str | None = None, action: str | None = None) -> list[SimMessage]:
        return [m for m in self.messages.values() if (station_id is None or m.station_id == station_id)
                and (action is None or m.action == action)]

    def root_certificates(self, station_id: str, certificate_type: str) -> list[x509.Certificate]:
        return [x509.load_pem_x509_certificate(r.pem.encode()) for r in self.fleet[station_id].roots
                if r.certificate_type == certificate_type]

    def leaf_chain(self, station_id: str, certificate_type: str) -> list[x509.Certificate]:
        pem = self.fleet[station_id].certificates.get(certificate_type)
        return x509.load_pem_x509_certificates(pem.encode()) if pem else []

    # --- station behaviour -----------------------------------------------------------------------------

    def _flush(self, station_id: str) -> None:
        for msg in list(self.messages.values()):
            if msg.station_id == station_id and msg.response is None and msg.error is None:
                self._deliver(msg)

    def _deliver(self, msg: SimMessage) -> None:
        st = self.fleet[msg.station_id]
        handler = getattr(self, "_on_" + msg.action, None)
        if handler is None:
            msg.error = f"NotImplemented: {msg.action}"
        else:
            msg.response = handler(st, msg.payload)
        self._save()
        followup = getattr(self, "_after_" + msg.action, None)
        if followup is not None and msg.response is not None:
            followup(st, msg.payload, msg.response)

    def _on_InstallCertificate(self, st: SimStation, p: dict[str, Any]) -> dict[str, Any]:
        if st.reject_install:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "CertificateStoreMaxLengthExceeded"}}
        try:
            cert = x509.load_pem_x509_certificate(p["certificate"].encode())
        except ValueError:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate"}}
        ctype = p["certificateType"]
        same_type = [x509.load_pem_x509_certificate(r.pem.encode()) for r in st.roots if r.certificate_type == ctype]
        issuer: x509.Certificate | None = None
        if ctype == "CSMSRootCertificate" and st.arcc and same_type:
            issuer = next((r for r in same_type if _issued_by(cert, r)), None)
            if issuer is None or cert.subject == cert.issuer:
                return {"status": "Rejected", "statusInfo": {"reasonCode": "NotSignedByInstalledRoot"}}
        elif cert.subject != cert.issuer:
            issuer = next((r for r in same_type if _issued_by(cert, r)), None)
            if issuer is None:
                return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownIssuer"}}
        alg = HashAlgorithm.from_ocpp(st.hash_algorithm)
        hd = certificate_hash_data(cert, issuer, alg).to_ocpp()
        if not any(r.hash_data == hd for r in st.roots):
            st.roots.append(InstalledRoot(ctype, p["certificate"], hd))
        return {"status": "Accepted"}

    def _on_GetInstalledCertificateIds(self, st: SimStation, p: dict[str, Any]) -> dict[str, Any]:
        types = p.get("certificateType") or list(ROOT_TYPES)
        chain = [{"certificateType": r.certificate_type, "certificateHashData": r.hash_data}
                 for r in st.roots if r.certificate_type in types]
        if not chain:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashDataChain": chain}

    def _on_DeleteCertificate(self, st: SimStation, p: dict[str, Any]) -> dict[str, Any]:
        want = CertificateHashData.from_ocpp(p["certificateHashData"])
        for r in st.roots:
            if CertificateHashData.from_ocpp(r.hash_data) == want:
                if r.certificate_type == "CSMSRootCertificate" and \
                        sum(1 for x in st.roots if x.certificate_type == "CSMSRootCertificate") == 1:
                    return {"status": "Failed"}  # whitepaper M04.FR.06: never delete the last CSMS root
                st.roots.remove(r)
                return {"status": "Accepted"}
        return {"status": "NotFound"}

    def _on_TriggerMessage(self, st: SimStation, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("requestedMessage") in ("SignChargingStationCertificate", "SignV2GCertificate"):
            return {"status": "Accepted"}
        return {"status": "NotImplemented"}

    def _after_TriggerMessage(self, st: SimStation, p: dict[str, Any], r: dict[str, Any]) -> None:
        if r.get("status") != "Accepted" or self.csms is None:
            return
        v2g = p["requestedMessage"] == "SignV2GCertificate"
        ctype = "V2GCertificate" if v2g else "ChargingStationCertificate"
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, st.secc_id if v2g else st.station_id),
                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, st.organization),
                 x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
        if v2g:
            attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
        signed = self.csms.sign(st.station_id, csr.public_bytes(serialization.Encoding.PEM).decode(), ctype)
        if signed is None:
            return
        chain_pem, cert_id = signed
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        roots = self.root_certificates(st.station_id, "V2GRootCertificate" if v2g else "CSMSRootCertificate")
        ok = chain[0].public_key() == key.public_key() and _chain_ok(chain, roots)
        status = "Accepted" if ok else "Rejected"
        if ok:
            st.certificates[ctype] = chain_pem
            self._save()
        self.csms.signed_result(st.station_id, cert_id, status)
        if ok and not v2g:
            self.csms.connected(st.station_id, chain[0])  # A02.FR.08: reconnect with the new certificate

    # --- persistence -----------------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {"stations": [asdict(s) for s in self.fleet.values()],
                "messages": [asdict(m) for m in self.messages.values()]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_file)

    def _load(self) -> None:
        assert self.state_file is not None
        data = json.loads(self.state_file.read_text())
        for s in data["stations"]:
            roots = [InstalledRoot(**r) for r in s.pop("roots")]
            self.fleet[s["station_id"]] = SimStation(**s, roots=roots)
        for m in data["messages"]:
            msg = SimMessage(**m)
            self.messages[msg.message_id] = msg
            self.by_key[msg.key] = msg.message_id


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _chain_ok(chain: list[x509.Certificate], roots: Iterable[x509.Certificate]) -> bool:
    for child, parent in itertools.pairwise(chain):
        if not _issued_by(child, parent):
            return False
    return any(_issued_by(chain[-1], r) for r in roots)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
