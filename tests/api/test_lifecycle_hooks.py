"""The one-call hooks the OCPP endpoint uses, against the real services container."""

from __future__ import annotations

from api.context import Services
from api.lifecycle import (
    lifecycle_for,
    on_certificate_issued,
    on_certificate_signed_answer,
    on_security_event,
    on_station_connected,
)
from pki.profiles import CertKind
from pki.store import lifecycle_repo as lrepo
from pki.store.models import StationCertState
from tests.helpers import make_csr, p256


def test_hooks_drive_the_station_certificate_lifecycle(services: Services) -> None:
    a = services.authority
    first = a.issue_from_csr(make_csr(p256(), CN="CS7", O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner="CS7")
    on_station_connected(services, "CS7", first.certificate)
    second = a.issue_from_csr(make_csr(p256(), CN="CS7", O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner="CS7")
    assert second.record.id is not None
    on_certificate_issued(services, "CS7", second.record.id, "ChargingStationCertificate")
    on_certificate_signed_answer(services, "CS7", second.record.id, "Accepted")
    on_station_connected(services, "CS7", second.certificate)
    states = [r.state for r in lrepo.station_certificates(services.db, "CS7")]
    assert states == [StationCertState.SUPERSEDED, StationCertState.IN_USE]
    third = a.issue_from_csr(make_csr(p256(), CN="CS7", O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner="CS7")
    assert third.record.id is not None
    on_certificate_issued(services, "CS7", third.record.id, "ChargingStationCertificate")
    on_security_event(services, "CS7", "InvalidChargingStationCertificate", "chain")
    assert lrepo.get_station_certificate(services.db, third.record.id).state == "rejected"  # type: ignore[union-attr]
    assert lifecycle_for(services).stations.rejections("CS7")[0]["action"] == "station.security_event"


def test_superseded_certificates_are_revoked_through_the_revocation_service(services: Services) -> None:
    from api.lifecycle import LifecycleSettings

    lc = lifecycle_for(services, settings=LifecycleSettings(grace_hours=0))
    a = services.authority
    first = a.issue_from_csr(make_csr(p256(), CN="CS8", O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner="CS8")
    lc.stations.station_connected("CS8", first.certificate)
    second = a.issue_from_csr(make_csr(p256(), CN="CS8", O="Test CPO", C="DE"), CertKind.STATION_CLIENT, owner="CS8")
    lc.stations.station_connected("CS8", second.certificate)
    assert lc.stations.revoke_due() == 1
    rec = a.certificate(first.record.id or 0)
    assert rec.status == "revoked" and rec.revocation_reason == "superseded"
    # the OCSP responder (revocation service listener) now answers revoked for it
    from cryptography.x509 import ocsp

    from pki.hashdata import HashAlgorithm, certificate_hash_data

    hd = certificate_hash_data(first.certificate, first.chain[0], HashAlgorithm.SHA256)
    der = services.ocsp.respond_to_hash_data(hd)
    assert ocsp.load_der_ocsp_response(bytes(der)).certificate_status == ocsp.OCSPCertStatus.REVOKED
