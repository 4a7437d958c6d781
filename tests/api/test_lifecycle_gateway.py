"""The outbox adapter: rotation calls land in ocpp_outbox once per key; answers written there drive the job."""

from __future__ import annotations

import json

from api.context import Services
from api.lifecycle import lifecycle_for
from api.lifecycle_gateway import OutboxGateway
from pki.hashdata import HashAlgorithm, certificate_hash_data
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.rotation import RotationOptions
from pki.stations import StationSpec, register_station
from pki.store import ocpp_repo
from pki.store.models import ItemState
from pki.store.ocpp_models import OutboxStatus


def test_rotation_through_the_outbox_adapter(services: Services) -> None:
    for sid, profile in (("CS-A", 3), ("CS-B", 3), ("CS-1", 1)):
        register_station(services.db, StationSpec(sid, f"SN-{sid}", "Test CPO", security_profile=profile,
                                                  password="a-long-enough-password-1234"), scrypt_n=2)
    gw = OutboxGateway(services)
    assert gw.stations("csms") == ["CS-A", "CS-B"]  # profile 1 has no TLS trust store to update
    lc = lifecycle_for(services, gateway=gw)
    job = lc.rotation.start(lc.engine, RotationOptions(Hierarchy.CSMS, rate=0), "admin")
    assert job.id is not None
    lc.engine.run(job.id)
    rows = ocpp_repo.list_outbox(services.db, station_id="CS-A")
    assert [r.action for r in rows] == ["InstallCertificate"] and rows[0].status == OutboxStatus.PENDING
    lc.engine.run(job.id)  # nothing answered yet: no second row
    assert len(ocpp_repo.list_outbox(services.db, station_id="CS-A")) == 1
    # the station answers (as the runtime would record it), then reports its store in SHA384
    a = services.authority
    old, link_pem = a.ca_certificate(a.ca("csms-root")), json.loads(rows[0].payload)["certificate"]
    from cryptography import x509

    link = x509.load_pem_x509_certificate(link_pem.encode())
    assert link.issuer == old.subject  # unknown ARCC: the link certificate is sent
    ocpp_repo.update_outbox(services.db, rows[0].id, status=OutboxStatus.ANSWERED,  # type: ignore[arg-type]
                            response=json.dumps({"status": "Accepted"}))
    lc.engine.run(job.id)
    verify = ocpp_repo.list_outbox(services.db, station_id="CS-A")[-1]
    assert verify.action == "GetInstalledCertificateIds"
    chain = [{"certificateType": "CSMSRootCertificate",
              "certificateHashData": certificate_hash_data(c, i, HashAlgorithm.SHA384).to_ocpp()}
             for c, i in ((old, old), (link, old))]
    ocpp_repo.update_outbox(services.db, verify.id, status=OutboxStatus.ANSWERED,  # type: ignore[arg-type]
                            response=json.dumps({"status": "Accepted", "certificateHashDataChain": chain}))
    lc.engine.run(job.id)
    item = next(i for i in lc.engine.report(job.id).items if i.station_id == "CS-A")
    # no client certificate of CS-A under the old root: nothing to re-issue, the station is done
    assert item.hash_algorithm == "SHA384" and item.step == "done" and item.state == ItemState.INSTALLED
    assert json.loads(item.old_root_hash or "{}")["hashAlgorithm"] == "SHA384"
    # a failed row becomes a retry with a new key, not a duplicate of the same step
    b = ocpp_repo.list_outbox(services.db, station_id="CS-B")[0]
    ocpp_repo.update_outbox(services.db, b.id, status=OutboxStatus.FAILED, error="CALLERROR")  # type: ignore[arg-type]
    lc.engine.run(job.id)
    assert [r.action for r in ocpp_repo.list_outbox(services.db, station_id="CS-B")] == \
        ["InstallCertificate", "InstallCertificate"]
