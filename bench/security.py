"""Security-layer costs, bounded (~20 s): audit append (hash-chained vs plain insert), chain verification, scrypt
key-file KDF, and PKCS#11 (SoftHSM2) ECDSA P-256 signatures when softhsm2 is installed.

    .venv/bin/python bench/security.py            # SQLite in a temp dir
    PNC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/security.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from pki.audit import AuditLog
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.store import repo

N = int(os.environ.get("PNC_BENCH_N", "1000"))


def _database(tmp: Path) -> tuple[repo.Database, object]:
    url = os.environ.get("PNC_DATABASE_URL", "")
    if url.startswith("postgresql"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=10)
        db = repo.Database(url, engine=engine)

        def drop() -> None:
            db.dispose()
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        db.migrate()
        return db, drop
    db = repo.Database(f"sqlite:///{tmp / 'bench.db'}")
    db.migrate()
    return db, db.dispose


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    db, close = _database(tmp)
    try:
        t = time.perf_counter()
        for i in range(N):
            repo.add_audit(db, repo.audit_event("bench", "bench.append", "success", details={"i": i}))
        chained = N / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(N):
            with db.session() as s:
                s.add(repo.audit_event("bench", "bench.plain", "success", details={"i": i}))
                s.commit()
        plain = N / (time.perf_counter() - t)
        with db.engine.begin() as c:
            c.execute(text("DELETE FROM audit_event WHERE action='bench.plain'"))

        def writer() -> None:
            for i in range(N // 4):
                repo.add_audit(db, repo.audit_event("bench", "bench.concurrent", "success", details={"i": i}))

        threads = [threading.Thread(target=writer) for _ in range(4)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        concurrent = N / (time.perf_counter() - t)

        keys = KeyManager()
        t = time.perf_counter()
        keys.register(FileKeyStore(tmp / "keys", b"bench passphrase"))
        keys.generate("k", KeyAlgorithm.P256)
        kdf = time.perf_counter() - t
        log = AuditLog(db, keys)
        log.checkpoint()
        t = time.perf_counter()
        result = log.verify()
        verify = result.entries / (time.perf_counter() - t)
        assert result.ok, result.problems[:3]
        print(f"database: {db.url.split(':')[0]}")
        print(f"audit append, hash-chained:   {chained:8.0f} entries/s (1 writer)")
        print(f"audit append, plain insert:   {plain:8.0f} entries/s (1 writer, for comparison)")
        print(f"audit append, hash-chained:   {concurrent:8.0f} entries/s (4 writers, one chain)")
        print(f"audit verify:                 {verify:8.0f} entries/s ({result.entries} entries, 1 checkpoint)")
        print(f"file store scrypt KDF + P-256 key write: {kdf * 1000:.0f} ms (once per process)")
        _hsm(tmp)
    finally:
        close()  # type: ignore[operator]
        shutil.rmtree(tmp, ignore_errors=True)


def _hsm(tmp: Path) -> None:
    module = "/usr/lib/softhsm/libsofthsm2.so"
    if shutil.which("softhsm2-util") is None or not Path(module).exists():
        print("PKCS#11: softhsm2 not installed, skipped")
        return
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "1111",
                    "--pin", "2222"], check=True, capture_output=True)
    from pki.keys.pkcs11 import Pkcs11KeyStore

    store = Pkcs11KeyStore(module, "bench", "2222")
    signer = store.signer(store.generate("bench", KeyAlgorithm.P256))
    n = N * 2
    t = time.perf_counter()
    for i in range(n):
        signer.sign(i.to_bytes(4, "big"), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    single = n / (time.perf_counter() - t)

    def work() -> None:
        for i in range(n // 4):
            signer.sign(i.to_bytes(4, "big"), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]

    threads = [threading.Thread(target=work) for _ in range(4)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    four = n / (time.perf_counter() - t)
    print(f"PKCS#11 SoftHSM2 ECDSA P-256: {single:8.0f} signatures/s (1 thread), {four:.0f}/s (4 threads, locked)")


if __name__ == "__main__":
    main()
