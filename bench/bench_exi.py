"""Benchmark: encode/decode of a full -2 CertificateInstallationRes (signed, two 3-certificate chains).

    .venv/bin/python bench/bench_exi.py [--no-oracle]

Reports the pure-Python codec and, when the oracle venv exists (tests/oracle/setup_oracle.sh),
EXIficient through py4j (JSON → JAXB → XML → EXI in the JVM, plus the py4j round trip) beside it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pki.iso15118 import exi
from pki.iso15118.exi import (
    NS_ISO2,
    CertificateChain,
    CertificateInstallationRes,
    Emaid,
    IdBytes,
    Reference,
    Signature,
    SignedInfo,
    V2GMessage,
)


def message() -> V2GMessage:
    res = CertificateInstallationRes(
        response_code="OK",
        sa_provisioning_certificate_chain=CertificateChain(b"\x30" * 570, (b"\x31" * 570, b"\x32" * 570)),
        contract_signature_cert_chain=CertificateChain(
            b"\x30" * 570, (b"\x33" * 570, b"\x34" * 570), id="id1"
        ),
        contract_signature_encrypted_private_key=IdBytes("id2", b"\x01" * 48),
        dh_public_key=IdBytes("id3", b"\x04" + b"\x02" * 64),
        emaid=Emaid("id4", "DEPNCC000000011"),
    )
    refs = tuple(Reference(f"#id{i}", bytes([i]) * 32) for i in range(1, 5))
    return V2GMessage(b"\x01\x02\x03\x04\x05\x06\x07\x08", res, Signature(SignedInfo(refs), b"\x05" * 64))


def timeit(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(20, n)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3, min(samples) * 1e3


def main() -> int:
    msg = message()
    data = exi.encode_message(msg, NS_ISO2)
    tree = msg.to_tree()
    print(f"CertificateInstallationRes: {len(data)} bytes EXI")
    rows = [
        ("pnc encode (model)", timeit(lambda: exi.encode_message(msg, NS_ISO2), 500)),
        ("pnc encode (tree)", timeit(lambda: exi.encode_message(tree, NS_ISO2), 500)),
        ("pnc decode (tree)", timeit(lambda: exi.decode_message(data, NS_ISO2), 500)),
        ("pnc decode (model)", timeit(lambda: exi.decode_model(data, NS_ISO2), 500)),
    ]
    if "--no-oracle" not in sys.argv:
        from tests.pki.iso15118.exi.oracle import Oracle, find_oracle

        found = find_oracle()
        if isinstance(found, str):
            print(f"EXIficient oracle unavailable: {found}")
        else:
            o = Oracle(*found)
            try:
                assert o.encode(tree, NS_ISO2) == data, "EXIficient disagrees with pnc"
                rows.append(("EXIficient/py4j encode", timeit(lambda: o.encode(tree, NS_ISO2), 200)))
                rows.append(("EXIficient/py4j decode", timeit(lambda: o.decode(data, NS_ISO2), 200)))
            finally:
                o.close()
    print(f"{'operation':<26}{'median ms':>10}{'min ms':>9}")
    for name, (med, mn) in rows:
        print(f"{name:<26}{med:>10.3f}{mn:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
