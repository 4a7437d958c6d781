"""Cost growth with the number of stored certificates: do lookups stay flat at 10k / 100k / 1M rows?

The certificate table is filled with synthetic rows (real DER size, issued under the real station-client CA,
random serials and fingerprints, 10 % revoked, owners CS-<n>) in bulk, then at each size the hot paths are timed
on randomly chosen stored rows. The reference is the same operation at the smallest size, measured in the same
run: a flat lookup keeps the ratio near 1.0.

Operations:
- ``serial@ca``: certificate by (issuer, serial) — OCSP uncached answers, GetCertificateStatus;
- ``serial``: certificate by serial alone — REST/CLI revoke by serial without naming the CA;
- ``fingerprint``: record of a certificate — SP3 handshake, lifecycle bookkeeping;
- ``owner``: certificates of one station — console search, renewal;
- ``ocsp``: a full uncached OCSP answer for a stored certificate (parse, status lookup, sign, store);
- ``issue``: ``Authority.issue_from_csr`` end to end (write-ahead record, sign, finalise + audit);
- ``metrics pass``: one computation of the database gauges (certificates by status, expiring windows: aggregates,
  expected to grow with the table); ``metrics scrape``: a scrape as Prometheus sees it (computed at most every
  10 s, so constant).

Usage: .venv/bin/python -m bench.growth [--sizes 10000,100000,1000000] [--ops 300]
       [--db postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from rich.progress import Progress
from sqlalchemy import create_engine, insert, text

from api.context import Services, bootstrap, build_services
from api.observability import StateCollector
from api.settings import Settings
from pki.profiles import CertKind
from pki.store import repo
from pki.store.models import Certificate, CertStatus
from tests.helpers import make_csr, p256


def _timed(op: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        op()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


class Fill:
    """Synthetic rows under the real issuing CA, sized like real ones."""

    def __init__(self, services: Services) -> None:
        self.services = services
        issued = services.authority.issue_from_csr(make_csr(p256(), CN="SN-TEMPLATE", O="pnc-pki Dev"),
                                                   CertKind.STATION_CLIENT, actor="bench")
        self.template = issued.record
        self.der = issued.certificate.public_bytes(serialization.Encoding.DER)
        issuer = services.authority.ca_certificate(services.authority.ca_by_id(issued.record.ca_id))
        # the issuer's CertID hashes as cryptography computes them (not our own hashdata code)
        probe = ocsp.OCSPRequestBuilder().add_certificate(issued.certificate, issuer, hashes.SHA1()).build()
        self.name_hash, self.key_hash = probe.issuer_name_hash, probe.issuer_key_hash
        self.rows = 0
        self.samples: list[tuple[str, str, str]] = []  # (serial, fingerprint, owner) of stored rows

    def grow_to(self, size: int, progress: Progress) -> None:
        task = progress.add_task(f"filling to {size:,}", total=size - self.rows)
        now = dt.datetime.now(dt.UTC)
        rnd = random.Random(self.rows)
        table = Certificate.__table__  # type: ignore[attr-defined]
        with self.services.db.engine.begin() as conn:
            while self.rows < size:
                batch = []
                for _ in range(min(5000, size - self.rows)):
                    i = self.rows
                    serial = secrets.token_hex(16).lstrip("0") or "1"
                    fingerprint = secrets.token_hex(32)
                    revoked = i % 10 == 9
                    batch.append({
                        "ca_id": self.template.ca_id, "serial": serial, "kind": self.template.kind,
                        "generation": self.template.generation,
                        "status": CertStatus.REVOKED if revoked else CertStatus.VALID,
                        "subject": f"CN=SN-{i},O=pnc-pki Dev", "key_algorithm": self.template.key_algorithm,
                        "not_before": now - dt.timedelta(days=rnd.randint(0, 700)),
                        "not_after": now + dt.timedelta(days=rnd.randint(1, 730)), "der": self.der,
                        "fingerprint_sha256": fingerprint, "owner": f"CS-{i // 2}", "created_at": now,
                        "issued_at": now, "revoked_at": now if revoked else None,
                        "revocation_reason": "keyCompromise" if revoked else None, "actor": "bench",
                    })
                    if rnd.random() < 0.01 and len(self.samples) < 20_000:
                        self.samples.append((serial, fingerprint, f"CS-{i // 2}"))
                    self.rows += 1
                conn.execute(insert(table), batch)
                progress.advance(task, len(batch))
        if self.services.db.engine.dialect.name == "postgresql":
            # what autovacuum does shortly after a bulk load: planner statistics and the visibility map (without
            # them PostgreSQL scanned the primary key for an owner lookup: 485 ms at 1M rows)
            with self.services.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE certificate"))

    def ocsp_request(self, serial: str) -> bytes:
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self.name_hash, self.key_hash, int(serial, 16), hashes.SHA1())
        return builder.build().public_bytes(serialization.Encoding.DER)


def measure(fill: Fill, ops: int) -> dict[str, tuple[float, float]]:
    services = fill.services
    db = services.db
    rnd = random.Random(ops)
    pick = lambda: rnd.choice(fill.samples)  # noqa: E731
    ca_id = fill.template.ca_id
    out: dict[str, tuple[float, float]] = {}
    out["serial@ca"] = _timed(lambda: repo.get_certificate_by_serial(db, ca_id, pick()[0]), ops)
    out["serial"] = _timed(lambda: services.authority.certificate_by_serial(pick()[0]), ops)
    out["fingerprint"] = _timed(lambda: repo.get_certificate_by_fingerprint(db, pick()[1]), ops)
    out["owner"] = _timed(lambda: repo.list_certificates(db, owner=pick()[2]), ops)
    unused = iter(rnd.sample(fill.samples, min(len(fill.samples), ops)))

    def answer() -> None:
        result = services.ocsp.respond(fill.ocsp_request(next(unused)[0]))
        assert result.successful

    out["ocsp"] = _timed(answer, min(ops, len(fill.samples)))
    csrs = [make_csr(p256(), CN=f"SN-G-{uuid.uuid4().hex[:8]}", O="pnc-pki Dev") for _ in range(ops)]
    queue = iter(csrs)
    out["issue"] = _timed(lambda: services.authority.issue_from_csr(next(queue), CertKind.STATION_CLIENT,
                                                                   actor="bench"), ops)
    collector = StateCollector(lambda: services)
    out["metrics pass"] = _timed(lambda: list(collector._compute()), 10)  # the aggregate queries themselves
    out["metrics scrape"] = _timed(lambda: list(collector.collect()), ops)  # what Prometheus sees (TTL cache)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--db", default="", help="PostgreSQL URL (a fresh schema is used and dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema (to EXPLAIN queries)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        url = ""
        if args.db:
            schema = f"g_{uuid.uuid4().hex[:10]}"
            with create_engine(args.db).begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = args.db + ("&" if "?" in args.db else "?") + f"options=-csearch_path%3D{schema}"
        settings = Settings(data_dir=Path(tmp) / "var", key_passphrase="bench-only",  # noqa: S106
                            with_iso15118_20=False,
                            database_url=url)
        services = build_services(settings)
        bootstrap(services)
        try:
            fill = Fill(services)
            results: dict[int, dict[str, tuple[float, float]]] = {}
            with Progress() as progress:
                for size in sizes:
                    fill.grow_to(size, progress)
                    results[size] = measure(fill, args.ops)
            engine = services.db.engine.dialect.name
            base = results[sizes[0]]
            print(f"\n{engine}, {args.ops} operations per cell; median µs (p99 µs) and median ratio to "
                  f"{sizes[0]:,} rows\n")
            print("| operation | " + " | ".join(f"{s:,} rows" for s in sizes) + " |")
            print("|---|" + "---|" * len(sizes))
            for op in base:
                cells = [f"{results[s][op][0]:,.0f} ({results[s][op][1]:,.0f}) ×{results[s][op][0] / base[op][0]:.2f}"
                         for s in sizes]
                print(f"| {op} | " + " | ".join(cells) + " |")
        finally:
            services.close()
            if schema is not None and args.keep:
                print(f"kept schema {schema}")
            elif schema is not None:
                with create_engine(args.db).begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
