"""Benchmark: server-side time per Get15118EVCertificate (ISO 15118-2 Install), with a breakdown.

    .venv/bin/python bench/contracts.py [-n 200] [--threads 1] [--processes 1]

Runs the whole local pipeline of ContractService.handle (base64 → EXI decode → OEM chain + signature → contract
lookup → contract certificate issuance (write-ahead record, signature, audit) → key encryption → CPS signature →
EXI encode → base64) on a temporary SQLite database with the development hierarchies, one request at a time per
thread. ``--processes N`` runs N worker processes on the same database and key store, each with its own service
(what ``pnc serve --workers N`` does), and reports the machine's throughput: the wall time from the moment all
workers are ready until the last answer. Without the EXI codec in the build it uses the JSON stand-in codec from
the tests and says so (EXI cost excluded).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASSPHRASE = b"bench-passphrase"


def _service(tmp: str, now: dt.datetime) -> tuple[Any, str, Any]:
    """The contract service over the benchmark's database and key store (created by ``_setup``)."""
    from pki.authority import Authority
    from pki.clock import FixedClock
    from pki.iso15118 import xmldsig
    from pki.iso15118.cps import CpsProvisioner
    from pki.iso15118.registry import ContractRegistry
    from pki.iso15118.service import ContractService
    from pki.iso15118.trust import TrustStore
    from pki.keys.base import KeyManager
    from pki.keys.file import FileKeyStore
    from pki.store.repo import Database
    from tests.pki.iso15118.fake_codec import FakeCodec

    codec: Any = xmldsig.load_exi_codec()
    codec_name = "pki.iso15118.exi (pure-Python EXI)" if codec is not None else "JSON stand-in (EXI NOT measured)"
    version = "2.0.1" if codec is not None else "2.1"  # the JSON stand-in is ~2x larger than EXI
    db = Database(f"sqlite:///{tmp}/bench.db")
    keys = KeyManager()
    keys.register(FileKeyStore(Path(tmp) / "keys", PASSPHRASE))
    clock = FixedClock(now)
    authority = Authority(db, keys, public_url="http://127.0.0.1:8080", clock=clock)
    svc = ContractService(authority, registry=ContractRegistry(db, clock=clock), trust=TrustStore(authority),
                          cps=CpsProvisioner(authority), codec=codec or FakeCodec())
    return svc, codec_name, version


def _setup(tmp: str, now: dt.datetime, n: int) -> list[str]:
    """Database, hierarchies, ``n`` vehicles with a contract each, and one signed request per vehicle."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies, iso15118_specs
    from pki.keys.base import KeyAlgorithm
    from pki.profiles import CertKind, Generation
    from pki.store.repo import Database
    from tests.pki.iso15118 import ev

    schema = Database(f"sqlite:///{tmp}/bench.db")
    schema.migrate()
    schema.dispose()
    svc, _, version = _service(tmp, now)
    authority = svc.authority
    create_hierarchies(authority, [HierarchyPlan(Generation.ISO15118_2, iso15118_specs(), KeyAlgorithm.P256),
                                   HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256)],
                       organization="Bench", country="DE")
    root = authority.ca_certificate(authority.ca("v2g-root"))
    requests = []
    for i in range(n):
        pcid = f"WMIV{i:013d}X"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = authority.issue_for_public_key(
            CertKind.OEM_PROV_LEAF, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, pcid)]), key.public_key(),
            issuer=authority.ca("oem-sub2")).certificate
        svc.registry.create(owner="bench", country="DE", provider="BNC", pcid=pcid)
        requests.append(base64.b64encode(ev.install_request(svc.installer.codec, key, cert, [root])).decode())
    svc.handle("warm-up", ev.NS2, "Install", requests[0], ocpp_version=version)  # issues the CPS leaf once
    svc.authority.db.dispose()
    return requests[1:]


def _instrument(svc: Any, timings: dict[str, list[float]]) -> None:
    """Wrap the pipeline's stages with timers (after the requests are built, so only server work is timed)."""
    import pki.iso15118.contract as contract_mod
    from pki.iso15118 import keywrap

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timings[name].append(time.perf_counter() - t)
        return wrapper

    inst = svc.installer
    real_codec = inst.codec
    inst.codec = type("Timed", (), {
        "decode_message": staticmethod(timed("1 decode EXI", real_codec.decode_message)),
        "encode_message": staticmethod(timed("8 encode EXI", real_codec.encode_message)),
        "encode_fragment": staticmethod(real_codec.encode_fragment),
        "encode_signed_info": staticmethod(real_codec.encode_signed_info),
    })()
    contract_mod.validate_path = timed("2 OEM chain", contract_mod.validate_path)  # type: ignore[assignment]
    contract_mod.verify = timed("3 request signature", contract_mod.verify)  # type: ignore[assignment]
    inst.registry.for_installation = timed("4 contract lookup", inst.registry.for_installation)
    inst._issue_contract = timed("5 issue contract cert", inst._issue_contract)
    keywrap.encrypt_contract_key_2 = timed("6 encrypt key", keywrap.encrypt_contract_key_2)  # type: ignore
    contract_mod.sign = timed("7 CPS signature", contract_mod.sign)  # type: ignore[assignment]


def _worker(tmp: str, now: dt.datetime, warm: str, requests: list[str], threads: int, ready: Any, go: Any,
            out: Any) -> None:
    """Answer ``requests`` with ``threads`` threads once every worker is ready; send back timings."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.pki.iso15118 import ev

    svc, codec_name, version = _service(tmp, now)
    timings: dict[str, list[float]] = defaultdict(list)
    _instrument(svc, timings)
    svc.handle("warm-up", ev.NS2, "Install", warm, ocpp_version=version)  # caches, first connection
    timings.clear()
    totals: list[float] = []

    def one(r: str) -> int:
        t = time.perf_counter()
        res = svc.handle("CS-bench", ev.NS2, "Install", r, ocpp_version=version)
        totals.append(time.perf_counter() - t)
        assert res.status == "Accepted", res.reason
        return len(res.exi_response)

    ready.set()
    go.wait()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        sizes = list(pool.map(one, requests))
    svc.authority.db.dispose()
    out.put((codec_name, totals, dict(timings), sizes[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="concurrent requests per process")
    ap.add_argument("--processes", type=int, default=1, help="worker processes on the same database")
    args = ap.parse_args()

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.UTC)
    p = args.processes
    with tempfile.TemporaryDirectory() as tmp:
        requests = _setup(tmp, now, args.n + p + 1)
        warm, work = requests[:p], requests[p:]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        go = ctx.Event()
        readies = [ctx.Event() for _ in range(p)]
        procs = [ctx.Process(target=_worker, args=(tmp, now, warm[i], work[i::p], args.threads, readies[i], go,
                                                  out)) for i in range(p)]
        for proc in procs:
            proc.start()
        for ready in readies:
            ready.wait()
        t0 = time.perf_counter()
        go.set()
        results = [out.get() for _ in procs]
        wall = time.perf_counter() - t0
        for proc in procs:
            proc.join()

    # reference on this machine, same run: P-256 ECDSA sign (docs/performance-reference.md: 23.5 µs on a quiet core)
    ref_key = ec.generate_private_key(ec.SECP256R1())
    t = time.perf_counter()
    for _ in range(2000):
        ref_key.sign(b"reference", ec.ECDSA(hashes.SHA256()))
    ref_us = (time.perf_counter() - t) / 2000 * 1e6

    def ms(v: list[float], q: float) -> float:
        return sorted(v)[min(len(v) - 1, int(q * len(v)))] * 1000

    codec_name = results[0][0]
    totals = [x for r in results for x in r[1]]
    timings: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for name, v in r[2].items():
            timings[name].extend(v)
    print(f"codec: {codec_name}; installations: {len(totals)}; exiResponse {results[-1][3]} base64 chars")
    print(f"total  p50 {ms(totals, 0.5):7.2f} ms  p99 {ms(totals, 0.99):7.2f} ms  "
          f"throughput {len(totals) / wall:6.1f} installations/s ({p} process(es) x {args.threads} thread(s))")
    print(f"reference P-256 sign {ref_us:.1f} µs (quiet-machine reference 23.5 µs: this run is "
          f"{ref_us / 23.5:.1f}x slower than the reference machine)")
    for name in sorted(timings):
        v = timings[name]
        print(f"  {name:<24} mean {statistics.mean(v) * 1000:7.3f} ms  p99 {ms(v, 0.99):7.3f} ms")


if __name__ == "__main__":
    main()
