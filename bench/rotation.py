"""Root-rotation throughput against the simulated fleet: `python bench/rotation.py [stations]`.

Measures the job engine + CA work per station (InstallCertificate, GetInstalledCertificateIds, TriggerMessage with
a real CSR → issuance → CertificateSigned → supersession, DeleteCertificate, revocation of the superseded
certificate) on SQLite, unthrottled (--rate 0). Station provisioning is excluded from the timing.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pki.authority import Authority
from pki.clock import FixedClock
from pki.keys.base import KeyManager
from pki.keys.file import FileKeyStore
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine
from pki.lifecycle.rotation import RootRotation, RotationOptions
from pki.lifecycle.stations import StationLifecycle
from pki.store.repo import Database
from tests.conftest import make_hierarchies
from tests.pki.lifecycle.fleet import build_fleet


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Database(f"sqlite:///{d}/bench.db")
        db.migrate()
        keys = KeyManager()
        keys.register(FileKeyStore(Path(d) / "keys", b"bench"))
        clock = FixedClock(dt.datetime.now(dt.UTC))
        authority = Authority(db, keys, public_url="http://127.0.0.1:8080", clock=clock)
        make_hierarchies(authority)
        lifecycle = StationLifecycle(db, clock, grace=dt.timedelta(0))
        t0 = time.perf_counter()
        fleet, _ = build_fleet(authority, lifecycle, n, with_v2g=False)
        t1 = time.perf_counter()
        rotation = RootRotation(authority, fleet, lifecycle)
        engine = JobEngine(db, clock=clock, handlers=[rotation])
        job = rotation.start(engine, RotationOptions(Hierarchy.CSMS, batch=n, rate=0), actor="bench")
        assert job.id is not None
        job = engine.run(job.id)
        t2 = time.perf_counter()
        assert job.status == "completed", job.message
        print(f"stations={n} provisioning={t1 - t0:.1f}s rotation={t2 - t1:.1f}s "
              f"per_station={(t2 - t1) / n * 1000:.0f}ms messages={len(fleet.messages)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
