"""Benchmark: server-side time per Get15118EVCertificate (ISO 15118-2 Install), with a breakdown.

    .venv/bin/python bench/contracts.py [-n 200] [--exi-from /path/to/checkout-with-pki/iso15118/exi]

Runs the whole local pipeline of ContractService.handle (base64 → EXI decode → OEM chain + signature → contract
lookup → contract certificate issuance (write-ahead record, signature, audit) → key encryption → CPS signature →
EXI encode → base64) on a temporary SQLite database with the development hierarchies, one request at a time.
Without the EXI codec in the build it uses the JSON stand-in codec from the tests and says so (EXI cost excluded).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="concurrent requests (a service answers several stations)")
    ap.add_argument("--exi-from", default=None, help="pre-merge only: a checkout whose pki/iso15118/exi to use")
    args = ap.parse_args()
    if args.exi_from:
        import pki.iso15118

        pki.iso15118.__path__.append(str(Path(args.exi_from) / "pki" / "iso15118"))

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    import pki.iso15118.contract as contract_mod
    import pki.iso15118.xmldsig as xmldsig_mod
    from pki.authority import Authority
    from pki.clock import FixedClock
    from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies, iso15118_specs
    from pki.iso15118 import keywrap
    from pki.iso15118.cps import CpsProvisioner
    from pki.iso15118.registry import ContractRegistry
    from pki.iso15118.service import ContractService
    from pki.iso15118.trust import TrustStore
    from pki.keys.base import KeyAlgorithm, KeyManager
    from pki.keys.file import FileKeyStore
    from pki.profiles import CertKind, Generation
    from pki.store.repo import Database
    from tests.pki.iso15118 import ev
    from tests.pki.iso15118.fake_codec import FakeCodec

    codec: Any = xmldsig_mod.load_exi_codec()
    codec_name = "pki.iso15118.exi (pure-Python EXI)" if codec is not None else "JSON stand-in (EXI NOT measured)"
    version = "2.0.1" if codec is not None else "2.1"  # the JSON stand-in is ~2x larger than EXI
    codec = codec or FakeCodec()

    timings: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timings[name].append(time.perf_counter() - t)
        return wrapper

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.migrate()
        keys = KeyManager()
        keys.register(FileKeyStore(Path(tmp) / "keys", b"bench-passphrase"))
        clock = FixedClock(dt.datetime.now(dt.UTC))
        authority = Authority(db, keys, public_url="http://127.0.0.1:8080", clock=clock)
        create_hierarchies(authority, [HierarchyPlan(Generation.ISO15118_2, iso15118_specs(), KeyAlgorithm.P256),
                                       HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256)],
                           organization="Bench", country="DE")
        svc = ContractService(authority, registry=ContractRegistry(db, clock=clock), trust=TrustStore(authority),
                              cps=CpsProvisioner(authority), codec=codec)
        root = authority.ca_certificate(authority.ca("v2g-root"))
        requests = []
        for i in range(args.n):
            pcid = f"WMIV{i:013d}X"
            key = ec.generate_private_key(ec.SECP256R1())
            cert = authority.issue_for_public_key(
                CertKind.OEM_PROV_LEAF, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, pcid)]), key.public_key(),
                issuer=authority.ca("oem-sub2")).certificate
            svc.registry.create(owner="bench", country="DE", provider="BNC", pcid=pcid)
            requests.append(base64.b64encode(ev.install_request(codec, key, cert, [root])).decode())
        # instrument the stages (after building the requests, so only server work is timed)
        assert svc.installer is not None
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
        inst.registry.for_installation = timed("4 contract lookup", inst.registry.for_installation)  # type: ignore
        inst._issue_contract = timed("5 issue contract cert", inst._issue_contract)  # type: ignore[method-assign]
        keywrap.encrypt_contract_key_2 = timed("6 encrypt key", keywrap.encrypt_contract_key_2)  # type: ignore
        contract_mod.sign = timed("7 CPS signature", contract_mod.sign)  # type: ignore[assignment]
        svc.handle("warm-up", ev.NS2, "Install", requests[0], ocpp_version=version)  # CPS leaf issuance, caches
        timings.clear()
        totals = []
        def one(r: str) -> int:
            t = time.perf_counter()
            res = svc.handle("CS-bench", ev.NS2, "Install", r, ocpp_version=version)
            totals.append(time.perf_counter() - t)
            assert res.status == "Accepted", res.reason
            return len(res.exi_response)

        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            sizes = list(pool.map(one, requests[1:]))
        wall = time.perf_counter() - t0
        size = sizes[-1]

    # reference on this machine, same run: P-256 ECDSA sign (docs/performance-reference.md: 23.5 µs on a quiet core)
    ref_key = ec.generate_private_key(ec.SECP256R1())
    t = time.perf_counter()
    for _ in range(2000):
        ref_key.sign(b"reference", ec.ECDSA(__import__("cryptography.hazmat.primitives.hashes",
                                                       fromlist=["SHA256"]).SHA256()))
    ref_us = (time.perf_counter() - t) / 2000 * 1e6

    def ms(v: list[float], q: float) -> float:
        return sorted(v)[min(len(v) - 1, int(q * len(v)))] * 1000

    print(f"codec: {codec_name}; installations: {len(totals)}; exiResponse {size} base64 chars")
    print(f"total  p50 {ms(totals, 0.5):7.2f} ms  p99 {ms(totals, 0.99):7.2f} ms  "
          f"throughput {len(totals) / wall:6.1f} installations/s ({args.threads} thread(s))")
    print(f"reference P-256 sign {ref_us:.1f} µs (quiet-machine reference 23.5 µs: this run is "
          f"{ref_us / 23.5:.1f}x slower than the reference machine)")
    for name in sorted(timings):
        v = timings[name]
        print(f"  {name:<24} mean {statistics.mean(v) * 1000:7.3f} ms  p99 {ms(v, 0.99):7.3f} ms")


if __name__ == "__main__":
    main()
