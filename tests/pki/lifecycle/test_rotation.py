"""Root rotation against a simulated fleet of 24 stations (some offline, mixed AdditionalRootCertificateCheck)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from pki.audit import AuditLog
from pki.authority import Authority
from pki.clock import FixedClock
from pki.hashdata import CertificateHashData
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation, RotationOptions
from pki.lifecycle.stations import StationLifecycle
from pki.profiles import CertKind
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import ItemState, JobStatus
from tests.conftest import make_hierarchies
from tests.helpers import make_csr, openssl_verify, p256
from tests.pki.lifecycle.fleet import build_fleet


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))  # openssl verifies at real time


@pytest.fixture
def world(authority: Authority, clock: FixedClock):  # type: ignore[no-untyped-def]
    authority.clock = clock
    make_hierarchies(authority)
    lifecycle = StationLifecycle(authority.db, clock, grace=dt.timedelta(hours=24))
    return authority, lifecycle


def _engine(authority: Authority, fleet, lifecycle, clock):  # type: ignore[no-untyped-def]
    rotation = RootRotation(authority, fleet, lifecycle, sleep=lambda s: clock.advance(dt.timedelta(seconds=s)))
    return JobEngine(authority.db, clock=clock, handlers=[rotation]), rotation


def test_csms_root_rotation_with_offline_stations(world, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    authority, lifecycle = world
    fleet, _csms = build_fleet(authority, lifecycle, 24, with_v2g=False)
    offline = ["CS0003", "CS0010", "CS0017", "CS0022"]
    for sid in offline:
        fleet.set_online(sid, False)
    engine, rotation = _engine(authority, fleet, lifecycle, clock)
    start = clock.now()
    job = rotation.start(engine, RotationOptions(Hierarchy.CSMS, batch=5, rate=20), actor="admin")
    assert job.id is not None
    job = engine.run(job.id)
    assert job.status == JobStatus.WAITING and job.phase == "rollout"
    counts = lrepo.item_counts(authority.db, job.id)
    assert counts == {ItemState.INSTALLED: 20, ItemState.PENDING: 4}
    pending = {i.station_id: i.reason for i in lrepo.list_items(authority.db, job.id, state=ItemState.PENDING)}
    assert set(pending) == set(offline) and all("offline" in (r or "") for r in pending.values())
    # rate limit honoured: 20 calls/s over >= 20*3 calls means the (injected) clock moved at least 3 s
    assert clock.now() >= start + dt.timedelta(seconds=3)

    # the CSMS server certificate must move to the new chain before the old root can go
    old_server = authority.issue_from_csr(make_csr(p256(), CN="csms.example.com", O="Test CPO", C="DE"),
                                          CertKind.CSMS_SERVER, issuer="csms-sub")
    for sid in offline:  # reconnect: the outbox delivers, the job continues
        fleet.set_online(sid, True)
        engine.run_open_jobs_for_station(sid)
    job = engine.get(job.id)
    assert lrepo.item_counts(authority.db, job.id) == {ItemState.INSTALLED: 24}
    assert job.phase == "retire" and job.status == JobStatus.WAITING
    assert "still in use" in (job.message or "") and "csms-server" in (job.message or "")

    new_server = authority.issue_from_csr(make_csr(p256(), CN="csms.example.com", O="Test CPO", C="DE"),
                                          CertKind.CSMS_SERVER)
    assert authority.ca_by_id(new_server.record.ca_id).name == "csms-sub-g2"
    lifecycle.revoker(old_server.record, "superseded", "admin")  # type: ignore[misc]
    job = engine.run(job.id)
    assert job.status == JobStatus.WAITING  # old station certs are superseded but inside the grace period
    clock.advance(dt.timedelta(hours=25))
    job = engine.run(job.id)
    assert job.status == JobStatus.COMPLETED, job.message

    new_root = authority.ca_certificate(authority.ca("csms-root-g2"))
    old_root_cert = authority.ca_certificate(authority.ca("csms-root"))
    assert authority.ca("csms-root").status == "retired" and authority.ca("csms-sub").status == "retired"
    for sid, st in fleet.fleet.items():
        roots = fleet.root_certificates(sid, "CSMSRootCertificate")
        assert old_root_cert not in roots, sid  # old root deleted everywhere
        assert len(roots) == 1 and roots[0].public_key() == new_root.public_key()
        if st.arcc:  # M05: they got the link certificate (signed by the old root)
            assert roots[0].issuer == old_root_cert.subject
        else:
            assert roots[0] == new_root
        chain = fleet.leaf_chain(sid, "ChargingStationCertificate")
        assert chain[1] == authority.ca_certificate(authority.ca("csms-sub-g2"))
        openssl_verify(chain[0], chain[1:], new_root)
        # exactly one of each call per station: no duplicates
        actions = Counter(m.action for m in fleet.sent(sid))
        assert actions == {"InstallCertificate": 1, "GetInstalledCertificateIds": 1, "TriggerMessage": 1,
                           "DeleteCertificate": 1}, (sid, actions)
        delete = fleet.sent(sid, "DeleteCertificate")[0]
        assert delete.response == {"status": "Accepted"}
        # M04.FR.07: deleted with the hash algorithm the station reported
        assert CertificateHashData.from_ocpp(delete.payload["certificateHashData"]).hash_algorithm.ocpp == \
            st.hash_algorithm
    # old station certificates were revoked as superseded
    olds = repo.list_certificates(authority.db, kind="station-client", ca_id=authority.ca("csms-sub").id,
                                  limit=100)
    assert len(olds) == 24 and all(c.status == "revoked" and c.revocation_reason == "superseded" for c in olds)
    actions = [e.action for e in repo.list_audit(authority.db, limit=10_000)]
    assert actions.count("trust.install") == 24 and actions.count("trust.delete") == 24
    assert "ca.retire" in actions and "job.complete" in actions
    # jobs, superseding revocations and trust-store changes are all links of the tamper-evident chain
    verdict = AuditLog(authority.db, authority.keys).verify()
    assert verdict.ok, verdict.problems[:5]


def test_v2g_rotation_reissues_every_secc_certificate(world, clock: FixedClock) -> None:  # type: ignore[no-untyped-def]
    authority, lifecycle = world
    fleet, csms = build_fleet(authority, lifecycle, 20)
    fleet.set_online("CS0005", False)
    engine, rotation = _engine(authority, fleet, lifecycle, clock)
    job = rotation.start(engine, RotationOptions(Hierarchy.V2G, rate=0), actor="admin")
    assert job.id is not None
    assert json.loads(job.params)["link_certificate"] is False
    engine.run(job.id)
    fleet.set_online("CS0005", True)
    engine.run_open_jobs_for_station("CS0005")
    assert lrepo.item_counts(authority.db, job.id) == {ItemState.INSTALLED: 20}
    new_root = authority.ca_certificate(authority.ca("v2g-root-g2"))
    for sid in fleet.fleet:
        chain = fleet.leaf_chain(sid, "V2GCertificate")
        assert [authority.ca_by_id(repo.get_certificate_by_fingerprint(
            authority.db, c.fingerprint(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"])
                                        .SHA256()).hex()).ca_id).name  # type: ignore[union-attr]
                for c in chain] == ["cpo-sub2-g2", "cpo-sub1-g2", "v2g-root-g2"]
        openssl_verify(chain[0], chain[1:], new_root)
    # CPS leaves do not exist in this fleet; every old SECC cert is superseded -> revoked after grace
    clock.advance(dt.timedelta(hours=25))
    job = engine.run(job.id)
    assert job.status == JobStatus.COMPLETED, job.message
    assert authority.ca("cpo-sub2").status == "retired" and authority.ca("cps-sub2").status == "retired"
    assert len(csms.signed) == 20


def test_a_busy_job_is_not_run_twice_by_one_process_and_the_wakeup_is_kept(authority: Authority) -> None:
    """The database lease is re-entrant for its holder (host:pid); threads of one process are kept apart, and a
    thread that found the job busy makes the running one take another pass instead of losing its wake-up."""
    import threading

    from pki.errors import Conflict
    from pki.store.models import LifecycleJob

    passes: list[int] = []
    entered, release = threading.Event(), threading.Event()

    class Slow:
        kind = "slow"

        def tick(self, engine: JobEngine, job: LifecycleJob) -> bool:
            passes.append(1)
            if len(passes) == 1:
                entered.set()
                release.wait(5)
            return False

    engine = JobEngine(authority.db, handlers=[Slow()])  # type: ignore[list-item]
    job = engine.create("slow", "t", {}, actor="t")
    assert job.id is not None
    worker = threading.Thread(target=engine.run, args=(job.id,))
    worker.start()
    assert entered.wait(5)
    try:
        engine.run(job.id)
        raised = False
    except Conflict:
        raised = True
    release.set()
    worker.join(5)
    assert raised and len(passes) == 2  # refused here, and the running thread took the extra pass
