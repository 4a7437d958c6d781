"""A simulated fleet wired to a real Authority: the CSMS side signs CSRs like the OCPP endpoint will."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.authority import Authority
from pki.lifecycle.simulator import SimStation, SimulatedFleet
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind, Generation
from tests.helpers import make_csr, p256

HASH_ALGS = ("SHA256", "SHA384", "SHA512")


class AuthorityCsms:
    """What the OCPP branch does on SignCertificate / CertificateSigned answer / TLS connect."""

    def __init__(self, authority: Authority, lifecycle: StationLifecycle) -> None:
        self.authority = authority
        self.lifecycle = lifecycle
        self.signed: list[tuple[str, int]] = []

    def sign(self, station_id: str, csr_pem: str, certificate_type: str) -> tuple[str, int] | None:
        if certificate_type == "V2GCertificate":
            issued = self.authority.issue_from_csr(csr_pem, CertKind.SECC_LEAF, generation=Generation.ISO15118_2,
                                                   owner=station_id, actor=f"station:{station_id}")
        else:
            issued = self.authority.issue_from_csr(csr_pem, CertKind.STATION_CLIENT, owner=station_id,
                                                   actor=f"station:{station_id}")
        assert issued.record.id is not None
        self.lifecycle.record_issued(station_id, issued.record.id, certificate_type)
        self.signed.append((station_id, issued.record.id))
        return issued.chain_pem(), issued.record.id

    def signed_result(self, station_id: str, certificate_id: int, status: str) -> None:
        self.lifecycle.certificate_signed_result(station_id, certificate_id, status)

    def connected(self, station_id: str, certificate: x509.Certificate) -> None:
        self.lifecycle.station_connected(station_id, certificate)


def build_fleet(authority: Authority, lifecycle: StationLifecycle, n: int, *, state_file: Path | None = None,
                arcc_every: int = 2, with_v2g: bool = True) -> tuple[SimulatedFleet, AuthorityCsms]:
    """``n`` stations with the CSMS root (and V2G root), a client certificate (and SECC certificate) in use."""
    fleet = SimulatedFleet(state_file)
    csms = AuthorityCsms(authority, lifecycle)
    fleet.csms = csms
    csms_root = authority.ca_certificate(authority.ca("csms-root"))
    v2g_root = authority.ca_certificate(authority.ca("v2g-root"))
    for i in range(n):
        sid = f"CS{i:04d}"
        st = fleet.add_station(SimStation(sid, arcc=(i % arcc_every == 0), hash_algorithm=HASH_ALGS[i % 3],
                                          hierarchies=["csms", "v2g"] if with_v2g else ["csms"],
                                          secc_id=f"DE*ICE*E{i:04d}"))
        fleet.install_root_directly(sid, "CSMSRootCertificate", csms_root)
        issued = authority.issue_from_csr(make_csr(p256(), CN=sid, O="Test CPO", C="DE"), CertKind.STATION_CLIENT,
                                          owner=sid)
        st.certificates["ChargingStationCertificate"] = issued.chain_pem()
        lifecycle.station_connected(sid, issued.certificate)
        if with_v2g:
            fleet.install_root_directly(sid, "V2GRootCertificate", v2g_root)
            secc = authority.issue_from_csr(make_csr(p256(), CN=st.secc_id, O="Test CPO", C="DE", DC="CPO"),
                                            CertKind.SECC_LEAF, generation=Generation.ISO15118_2, owner=sid)
            assert secc.record.id is not None
            lifecycle.record_issued(sid, secc.record.id, "V2GCertificate")
            lifecycle.certificate_signed_result(sid, secc.record.id, "Accepted")
            st.certificates["V2GCertificate"] = secc.chain_pem()
    fleet._save()
    return fleet, csms


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _LazyCsms(AuthorityCsms):
    """AuthorityCsms that finds the service's StationLifecycle when first used (it is built after the gateway)."""

    def __init__(self, services: object) -> None:
        self._services = services
        self.signed = []

    @property  # type: ignore[override]
    def authority(self) -> Authority:
        return self._services.authority  # type: ignore[attr-defined,no-any-return]

    @property  # type: ignore[override]
    def lifecycle(self) -> StationLifecycle:
        from api.lifecycle import lifecycle_for

        return lifecycle_for(self._services).stations  # type: ignore[arg-type]


def gateway_from_env(services: object) -> SimulatedFleet:
    """``PNC_LIFECYCLE_GATEWAY=tests.pki.lifecycle.fleet:gateway_from_env`` with ``PNC_SIM_STATE=<json file>``."""
    import os

    fleet = SimulatedFleet(Path(os.environ["PNC_SIM_STATE"]))
    fleet.csms = _LazyCsms(services)
    return fleet
