"""Station-certificate issuance end to end vs. the raw crypto limit, measured side by side in one run.

Reference ("raw crypto"): load the PEM CSR, verify its signature, build the certificate with the same extensions
count, sign with the same P-256 CA key, DER-encode — what issuance cannot avoid.
pnc-pki: `Authority.issue_from_csr` (policy checks, write-ahead record, signature, finalise + audit) on SQLite or
PostgreSQL, one at a time and from N threads; bulk issuance (`pki.batch_issuance.issue_batch`, chunks of 250: the
same checks and records, one INSERT and one finalising transaction per chunk); and both through the REST API
(`POST /api/v1/certificates` and `/api/v1/certificates/batch` with 500 CSRs per request, uvicorn, keep-alive client).
The storage floor line times the two transactions of one-at-a-time issuance through the bare DB-API driver: with
the raw crypto it bounds what issuing one certificate per transaction pair could reach even with no Python at all.

Usage: .venv/bin/python -m bench.bench_issuance [--n 2000] [--db postgresql+psycopg://postgres@127.0.0.1:5432/test]
(with --db: a private schema in that database, dropped afterwards; the in-process run and the server share it)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from bench.pg_schema import private_schema
from pki.authority import Authority
from pki.batch_issuance import BatchRequest, issue_batch
from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import CertKind, Generation
from pki.store import audit_chain
from pki.store.repo import Database
from tests.helpers import drain, free_port, make_csr, p256

ROOT = Path(__file__).resolve().parents[1]


def raw_crypto(csrs: list[bytes], key: object) -> float:
    start = time.perf_counter()
    for pem in csrs:
        csr = x509.load_pem_x509_csr(pem)
        assert csr.is_signature_valid
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(csr.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .sign(key, hashes.SHA256())  # type: ignore[arg-type]
        )
        cert.public_bytes(serialization.Encoding.DER)
    return time.perf_counter() - start


def storage_floor(db: Database, ca_id: int, n: int) -> float:
    """Seconds per certificate for the writes one-at-a-time issuance cannot skip, through the bare DB-API driver
    (no SQLAlchemy, no ORM, no Python of ours beyond the audit hash): the write-ahead INSERT in one transaction,
    then the finalising UPDATE, the chain-head read, the audit INSERT and the head UPDATE in a second — the same
    statements, on the same schema and indexes. With the raw crypto this bounds what one-at-a-time issuance can
    reach at all: raw / (raw + floor)."""
    sqlite = db.url.startswith("sqlite")
    mark = "?" if sqlite else "%s"

    def q(sql: str) -> str:
        return sql.replace("?", mark)

    def when(value: dt.datetime) -> object:  # what SQLAlchemy's SQLite DateTime stores; PostgreSQL takes datetimes
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else value

    insert_sql = q("INSERT INTO certificate (ca_id, serial, kind, generation, status, subject, key_algorithm, "
                   "not_before, not_after, owner, actor, request_id, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
    finalise_sql = q("UPDATE certificate SET der = ?, fingerprint_sha256 = ?, status = ?, issued_at = ?, "
                     "subject_ca_id = NULL WHERE id = ? AND status = ?")
    head_sql = ("SELECT sequence, entry_hash FROM audit_chain_head WHERE id = 1" if sqlite
                else "SELECT sequence, entry_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
    audit_sql = q("INSERT INTO audit_event (at, actor, action, target, outcome, request_id, details, sequence, "
                  "prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    move_sql = q("UPDATE audit_chain_head SET sequence = ?, entry_hash = ? WHERE id = 1")
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()

        def begin() -> None:
            if sqlite:
                cur.execute("BEGIN IMMEDIATE")  # the service's writers begin IMMEDIATE too; psycopg begins itself

        start = time.perf_counter()
        for _ in range(n):
            now = dt.datetime.now(dt.UTC)
            begin()
            cur.execute(insert_sql, (ca_id, os.urandom(16).hex(), "station-client", "ocpp", "pending",
                                     "CN=SN-floor,O=Bench CPO", "ec-p256", when(now), when(now), None, "bench",
                                     None, when(now)))
            record_id = cur.fetchone()[0]
            raw.commit()
            begin()
            cur.execute(finalise_sql, (os.urandom(600), os.urandom(32).hex(), "valid", when(now), record_id,
                                       "pending"))
            cur.execute(head_sql)
            sequence, prev = cur.fetchone()
            entry = {"sequence": sequence + 1, "at": audit_chain.format_time(now), "actor": "bench",
                     "action": "certificate.issue", "target": f"floor/{record_id}", "outcome": "success",
                     "request_id": None, "details": '{"kind": "station-client"}', "prev_hash": prev}
            entry_hash = audit_chain.compute_hash(entry)
            cur.execute(audit_sql, (when(now), "bench", "certificate.issue", entry["target"], "success", None,
                                    entry["details"], sequence + 1, prev, entry_hash))
            cur.execute(move_sql, (sequence + 1, entry_hash))
            raw.commit()
        return (time.perf_counter() - start) / n
    finally:
        raw.close()


def concurrent_issuance(authority: Authority, csrs: list[bytes], threads: int) -> tuple[float, float]:
    """``threads`` callers issuing at once, as the REST and OCPP pools do: (certificates/s, writes/transaction)."""
    gc = (authority.reservations, authority.finalisations)
    batches, items = sum(g.batches for g in gc), sum(g.items for g in gc)

    def issue(pem: bytes) -> None:
        authority.issue_from_csr(pem, CertKind.STATION_CLIENT)

    start = time.perf_counter()
    drain(csrs, issue, threads)
    elapsed = time.perf_counter() - start
    batches, items = sum(g.batches for g in gc) - batches, sum(g.items for g in gc) - items
    return len(csrs) / elapsed, items / max(batches, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--db", default="")
    ap.add_argument("--no-rest", action="store_true")
    ap.add_argument("--threads", type=int, default=8,
                    help="callers for the concurrent in-process run (group commit shares their transactions)")
    args = ap.parse_args()
    with private_schema(args.db) as db_url:
        run(args, db_url)


def run(args: argparse.Namespace, db_url: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pnc-bench-"))
    url = db_url or f"sqlite:///{tmp / 'bench.db'}"
    db = Database(url)
    db.migrate()
    keys = KeyManager()
    keys.register(FileKeyStore(tmp / "keys", b"bench-passphrase"))
    authority = Authority(db, keys, public_url="http://127.0.0.1:8080")
    create_hierarchies(authority, [HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256)],
                       organization="Bench CPO", country="DE")
    csrs = [make_csr(p256(), CN=f"SN-{i}", O="Bench CPO") for i in range(args.n)]
    ca_key = keys.signer(authority.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP).key_uri)

    raw_crypto(csrs[:50], ca_key)  # warm-up
    raw_s = raw_crypto(csrs, ca_key)
    lat = []
    start = time.perf_counter()
    for pem in csrs:
        t = time.perf_counter()
        authority.issue_from_csr(pem, CertKind.STATION_CLIENT)
        lat.append(time.perf_counter() - t)
    pnc_s = time.perf_counter() - start
    raw_rate, pnc_rate = args.n / raw_s, args.n / pnc_s
    print(f"backend: {url.split(':')[0]}, n={args.n}, one thread")
    print(f"raw crypto:        {raw_rate:8.0f} certificates/s")
    print(f"pnc Authority:     {pnc_rate:8.0f} certificates/s  ratio {pnc_rate / raw_rate:6.1%}  "
          f"p50 {statistics.median(lat) * 1e3:.2f} ms  p99 {sorted(lat)[int(0.99 * len(lat))] * 1e3:.2f} ms")
    issuer_id = authority.issuer_for(CertKind.STATION_CLIENT, Generation.OCPP).id or 0
    floor = storage_floor(db, issuer_id, min(args.n, 1000))
    crypto = 1 / raw_rate
    print(f"storage floor:     {floor * 1e6:8.0f} µs per certificate (bare driver, the same two transactions): "
          f"one at a time can reach at most {crypto / (crypto + floor):6.1%}")
    if args.threads > 1:
        more = [make_csr(p256(), CN=f"SN-T{i}", O="Bench CPO") for i in range(args.n)]
        rate, batch = concurrent_issuance(authority, more, args.threads)
        print(f"pnc Authority x{args.threads:<3d} {rate:8.0f} certificates/s  ratio {rate / raw_rate:6.1%}  "
              f"(group commit: {batch:.1f} writes per transaction)")
    bulk_csrs = [make_csr(p256(), CN=f"SN-B{i}", O="Bench CPO") for i in range(args.n)]
    raw_rate = args.n / raw_crypto(bulk_csrs, ca_key)  # again, right before: the machine's speed drifts
    print(f"raw crypto again:  {raw_rate:8.0f} certificates/s  (the reference for the lines below)")
    start = time.perf_counter()
    result = issue_batch(authority, [BatchRequest(c, owner=f"B{i}") for i, c in enumerate(bulk_csrs)],
                         CertKind.STATION_CLIENT)
    bulk_rate = args.n / (time.perf_counter() - start)
    assert result.issued == args.n
    print(f"pnc issue_batch:   {bulk_rate:8.0f} certificates/s  ratio {bulk_rate / raw_rate:6.1%}  "
          "(chunks of 250)")
    db.dispose()
    if args.no_rest:
        return

    port = free_port()
    env = {**os.environ, "PNC_DATA_DIR": str(tmp / "var"), "PNC_KEY_PASSPHRASE": "bench-passphrase",
           "PNC_WITH_ISO15118_20": "false", "PNC_ORGANIZATION": "Bench CPO", "PNC_LOG_LEVEL": "WARNING",
           "PNC_RATE_LIMIT_PER_TOKEN": "100000", "PNC_RATE_LIMIT_BURST": "100000"}  # measure issuance, not the limiter
    if db_url:  # the server then finds the CAs created above in the shared database: give it their keys
        env["PNC_DATABASE_URL"] = db_url
        env["PNC_KEY_DIR"] = str(tmp / "keys")
    server = subprocess.Popen([str(Path(sys.executable).parent / "pnc"), "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (tmp / "var" / "admin-token").read_text().strip()
        n = min(args.n, 1000)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            start = time.perf_counter()
            lat = []
            for pem in csrs[:n]:
                t = time.perf_counter()
                r = client.post("/api/v1/certificates", json={"kind": "station-client", "csr": pem.decode()})
                assert r.status_code == 201, r.text
                lat.append(time.perf_counter() - t)
            rest_s = time.perf_counter() - start
        rest_rate = n / rest_s
        print(f"pnc REST (1 conn): {rest_rate:8.0f} certificates/s  ratio {rest_rate / raw_rate:6.1%}  "
              f"p50 {statistics.median(lat) * 1e3:.2f} ms  p99 {sorted(lat)[int(0.99 * len(lat))] * 1e3:.2f} ms")
        rest_bulk = [make_csr(p256(), CN=f"SN-R{i}", O="Bench CPO").decode() for i in range(args.n)]
        raw_rate = args.n / raw_crypto([c.encode() for c in rest_bulk], ca_key)
        print(f"raw crypto again:  {raw_rate:8.0f} certificates/s  (the reference for the line below)")
        per_request = 500
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            start = time.perf_counter()
            for at in range(0, len(rest_bulk), per_request):
                items = [{"csr": c} for c in rest_bulk[at:at + per_request]]
                r = client.post("/api/v1/certificates/batch", json={"kind": "station-client", "items": items})
                assert r.status_code == 200 and r.json()["issued"] == len(items), r.text[:500]
            bulk_rest_s = time.perf_counter() - start
        rate = len(rest_bulk) / bulk_rest_s
        print(f"pnc REST batch:    {rate:8.0f} certificates/s  ratio {rate / raw_rate:6.1%}  "
              f"({per_request} CSRs per request, client JSON included)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
