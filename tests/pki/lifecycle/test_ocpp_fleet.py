"""CSMS root rotation with link certificate over real OCPP 2.0.1 ChargePoints (the `ocpp` package), 20 stations,
some offline during the roll-out: every station ends on the new chain and the old root is deleted everywhere."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from pki.authority import Authority
from pki.clock import FixedClock
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation, RotationOptions
from pki.lifecycle.stations import StationLifecycle
from pki.store import lifecycle_repo as lrepo
from pki.store.models import ItemState, JobStatus
from tests.conftest import make_hierarchies
from tests.helpers import openssl_verify
from tests.pki.lifecycle.fleet import build_fleet
from tests.pki.lifecycle.ocpp_fleet import OcppFleetGateway

pytestmark = pytest.mark.interop


def _drive(engine: JobEngine, gw: OcppFleetGateway, job_id: int, rounds: int = 20) -> None:
    """Run the job, let the OCPP traffic settle, repeat until it finishes or stops changing (bounded)."""
    last = None
    for _ in range(rounds):
        engine.run(job_id)
        gw.wait_quiet()
        job = engine.get(job_id)
        state = (lrepo.item_counts(engine.db, job_id), job.phase, job.status,
                 [(i.step, i.reason) for i in lrepo.list_items(engine.db, job_id)])
        if job.status == JobStatus.COMPLETED or state == last:
            return
        last = state


def test_csms_rotation_over_real_ocpp(authority: Authority) -> None:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    authority.clock = clock
    make_hierarchies(authority)
    lifecycle = StationLifecycle(authority.db, clock, grace=dt.timedelta(hours=1))
    fleet, _ = build_fleet(authority, lifecycle, 20, with_v2g=False)
    gw = OcppFleetGateway(authority, lifecycle, fleet)
    gw.start()
    try:
        offline = ["CS0002", "CS0009", "CS0015"]
        for sid in offline:
            gw.set_online(sid, False)
        engine = JobEngine(authority.db, clock=clock, handlers=[RootRotation(authority, gw, lifecycle)])
        rotation = engine.handlers["root-rotate"]
        job = rotation.start(engine, RotationOptions(Hierarchy.CSMS, batch=10, rate=0), actor="admin")  # type: ignore[attr-defined]
        _drive(engine, gw, job.id)
        counts = lrepo.item_counts(authority.db, job.id)
        assert counts == {ItemState.INSTALLED: 17, ItemState.PENDING: 3}, counts
        for sid in offline:
            gw.set_online(sid, True)
        _drive(engine, gw, job.id)
        assert lrepo.item_counts(authority.db, job.id) == {ItemState.INSTALLED: 20}
        job = engine.get(job.id)
        assert job.phase == "retire" and job.status == JobStatus.WAITING  # grace period of the old certs
        clock.advance(dt.timedelta(hours=2))
        _drive(engine, gw, job.id)
        job = engine.get(job.id)
        assert job.status == JobStatus.COMPLETED, job.message
        old = authority.ca_certificate(authority.ca("csms-root"))
        new = authority.ca_certificate(authority.ca("csms-root-g2"))
        for sid, st in fleet.fleet.items():
            roots = fleet.root_certificates(sid, "CSMSRootCertificate")
            assert len(roots) == 1 and roots[0].public_key() == new.public_key() and old not in roots
            assert (roots[0].issuer == old.subject) is st.arcc  # link certificate for ARCC stations
            chain = fleet.leaf_chain(sid, "ChargingStationCertificate")
            openssl_verify(chain[0], chain[1:], new)
            sent = Counter(q.action for q in gw.messages.values() if q.station_id == sid)
            assert sent == {"InstallCertificate": 1, "GetInstalledCertificateIds": 1, "TriggerMessage": 1,
                            "DeleteCertificate": 1}, (sid, sent)
    finally:
        gw.stop()
