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
from tests.helpers import free_port, stop_process

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


def _pg(action: str) -> None:
    """pg_ctlcluster ACTION on the local cluster; after a start or restart, wait until it accepts connections."""
    version = next(Path("/etc/postgresql").iterdir()).name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True, timeout=120)
    if action != "stop":
        for _ in range(60):
            if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError("PostgreSQL did not come back")


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
    _pg("restart")
    assert proc.wait(timeout=600) == 0
    received = _received([out])
    assert len(received) == 1500 and len(set(received)) == 1500
    rows = _db_rows(db)
    assert all(rows[r] == ("valid", True) for r in received)


@pytest.mark.pg_restart
def test_ocsp_serves_from_memory_while_the_database_is_down(tmp_path: Path) -> None:
    """The real service (`pnc serve`) on PostgreSQL; the database is stopped for a few seconds. Meanwhile OCSP
    keeps answering the pre-signed responses (byte for byte), /ready/ocsp keeps the instance in the OCSP pool
    while /ready takes it out of the API pool, issuance answers 503 problem+json; after the database is back the
    same process issues again without a restart."""
    if os.geteuid() != 0 or not any(Path("/etc/postgresql").glob("*")):
        pytest.skip("needs root and a local PostgreSQL cluster to stop and start")
    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from tests.helpers import make_csr, p256

    schema = f"o_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, pool_pre_ping=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    port, ocsp_port = free_port(), free_port()
    url, listener = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ocsp_port}"
    data = tmp_path / "var"
    env = {**os.environ, "PNC_DATA_DIR": str(data), "PNC_PORT": str(port), "PNC_HOST": "127.0.0.1",
           "PNC_OCSP_PORT": str(ocsp_port),  # the dedicated listener must ride out the outage too
           "PNC_PUBLIC_URL": url, "PNC_KEY_PASSPHRASE": "outage-test", "PNC_WITH_ISO15118_20": "false",
           "PNC_DATABASE_URL": PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli.main", "serve"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {(data / 'admin-token').read_text().strip()}"}

        def issue(i: int) -> httpx.Response:
            csr = make_csr(p256(), CN=f"SN-OUT-{i}", O="pnc-pki Dev").decode()
            return httpx.post(url + "/api/v1/certificates", headers=auth, timeout=10,
                              json={"kind": "station-client", "csr": csr})

        requests, before = [], []
        for i in range(3):
            resp = issue(i)
            assert resp.status_code == 201, resp.text
            leaf, issuer = x509.load_pem_x509_certificates(resp.json()["chain_pem"].encode())[:2]
            der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build() \
                .public_bytes(serialization.Encoding.DER)
            answer = httpx.post(url + "/ocsp", content=der, headers={"Content-Type": "application/ocsp-request"})
            parsed = ocsp.load_der_ocsp_response(answer.content)
            assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
            assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
            requests.append(der)
            before.append(answer.content)
        _pg("stop")
        try:
            outage_end = time.monotonic() + 3
            served = 0
            while time.monotonic() < outage_end:
                for der, expected in zip(requests, before, strict=True):
                    for base in (url, listener):
                        answer = httpx.post(base + "/ocsp", content=der, timeout=5,
                                            headers={"Content-Type": "application/ocsp-request"})
                        assert answer.status_code == 200 and answer.content == expected  # the pre-signed response
                        served += 1
            assert served >= 60
            assert httpx.get(url + "/ready", timeout=10).status_code == 503
            ready_ocsp = httpx.get(url + "/ready/ocsp", timeout=10)
            assert ready_ocsp.status_code == 200 and ready_ocsp.json()["database"] == "down"
            refused = issue(99)
            assert refused.status_code == 503 and refused.headers["content-type"].startswith("application/problem+json")
        finally:
            _pg("start")
        deadline = time.monotonic() + 30
        while (resp := issue(100)).status_code != 201:  # no restart, no manual action
            assert resp.status_code == 503, resp.text
            assert time.monotonic() < deadline, "issuance did not resume after the database came back"
            time.sleep(0.5)
        assert httpx.get(url + "/ready", timeout=10).status_code == 200
        assert proc.poll() is None
    finally:
        stop_process(proc, timeout=15)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
