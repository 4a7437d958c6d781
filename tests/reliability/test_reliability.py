"""Reliability on PostgreSQL (issue 9): concurrent processes, SIGKILL mid-load, database restart mid-load.

These run only against PostgreSQL (CI's `make pg-test`); on SQLite they skip with the reason. Bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pki.authority import Authority
from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import Generation
from pki.store.repo import Database
from tests.conftest import TEST_PASSPHRASE

PG_URL = os.environ.get("PNC_DATABASE_URL", "")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.storage,
    pytest.mark.skipif(not PG_URL.startswith("postgresql"),
                       reason="reliability tests need PostgreSQL (PNC_DATABASE_URL); CI runs them in `make pg-test`"),
]


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[tuple[Database, str, Path, Authority]]:
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, pool_pre_ping=True)  # survives the restart test's database restart
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True)
    db = Database(PG_URL, engine=engine)
    db.migrate()
    keys = KeyManager()
    keys.register(FileKeyStore(tmp_path / "keys", TEST_PASSPHRASE))
    authority = Authority(db, keys, public_url="http://127.0.0.1:8080")
    create_hierarchies(authority, [HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256)],
                       organization="Test CPO", country="DE")
    try:
        yield db, schema, tmp_path / "keys", authority
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _worker(schema: str, key_dir: Path, count: int, out: Path, worker: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.worker", PG_URL, schema, str(key_dir), str(count), str(out),
         str(worker)],
        cwd=ROOT,
    )


def _received(paths: list[Path]) -> list[tuple[int, str]]:
    rows = []
    for p in paths:
        if p.exists():
            for line in p.read_text().splitlines():
                ca_id, serial = line.split()
                rows.append((int(ca_id), serial))
    return rows


def _db_rows(db: Database) -> dict[tuple[int, str], tuple[str, bool]]:
    with db.engine.connect() as conn:
        return {
            (ca_id, serial): (status, der is not None)
            for ca_id, serial, status, der in conn.execute(
                text("SELECT ca_id, serial, status, der FROM certificate WHERE kind = 'station-client'")
            )
        }


def test_four_processes_issue_10000_without_duplicates_or_loss(pg: tuple[Database, str, Path, Authority],
                                                               tmp_path: Path) -> None:
    db, schema, key_dir, _ = pg
    outs = [tmp_path / f"w{i}.txt" for i in range(4)]
    procs = [_worker(schema, key_dir, 2500, outs[i], i) for i in range(4)]
    for p in procs:
        assert p.wait(timeout=600) == 0
    received = _received(outs)
    assert len(received) == 10_000
    assert len(set(received)) == 10_000  # 0 duplicate serials per issuer
    rows = _db_rows(db)
    assert len(rows) == 10_000  # 0 lost, 0 extra
    assert all(rows[r] == ("valid", True) for r in received)


def test_sigkill_mid_load_leaves_no_half_written_record(pg: tuple[Database, str, Path, Authority],
                                                        tmp_path: Path) -> None:
    db, schema, key_dir, authority = pg
    out = tmp_path / "victim.txt"
    proc = _worker(schema, key_dir, 1_000_000, out, 9)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 300):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    received = _received([out])
    assert len(received) >= 300
    # restart duties: what was reserved but never signed is marked aborted, never served
    import datetime as dt

    authority.recover_pending(older_than=dt.timedelta(0))
    rows = _db_rows(db)
    assert all(rows[r] == ("valid", True) for r in received)  # every certificate a client got is known
    assert not [k for k, (status, _) in rows.items() if status == "pending"]
    assert all(not has_der for status, has_der in rows.values() if status == "aborted")
    assert all(has_der for status, has_der in rows.values() if status == "valid")


@pytest.mark.pg_restart
def test_service_recovers_from_a_database_restart(pg: tuple[Database, str, Path, Authority], tmp_path: Path) -> None:
    """Restart PostgreSQL under a running issuer; it resumes by itself and loses nothing it acknowledged."""
    if os.geteuid() != 0 or not any(Path("/etc/postgresql").glob("*")):
        pytest.skip("needs root and a local PostgreSQL cluster to restart")
    db, schema, key_dir, _ = pg
    out = tmp_path / "restart.txt"
    proc = _worker(schema, key_dir, 1500, out, 7)
    while not out.exists() or len(out.read_text().splitlines()) < 200:
        time.sleep(0.05)
        assert proc.poll() is None
    version = next(Path("/etc/postgresql").iterdir()).name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   timeout=120)
    assert proc.wait(timeout=600) == 0
    received = _received([out])
    assert len(received) == 1500 and len(set(received)) == 1500
    rows = _db_rows(db)
    assert all(rows[r] == ("valid", True) for r in received)
