"""A separate process that issues station certificates and reports each one it received, line by line.

Used by the reliability tests: several of these run against one PostgreSQL database, get killed with SIGKILL, or
see the database restart under them. A serial is written to the output file only after ``issue_from_csr``
returned it, i.e. exactly when a client would have received the certificate.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError

from pki.authority import Authority
from pki.keys.base import KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import CertKind
from pki.store.repo import Database
from tests.helpers import make_csr, p256


def main() -> None:
    url, schema, key_dir, count, out_path, worker = sys.argv[1:7]
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=2,
                           pool_pre_ping=True)
    db = Database(url, engine=engine)
    keys = KeyManager()
    keys.register(FileKeyStore(Path(key_dir), b"test-passphrase-not-secret"))
    authority = Authority(db, keys, public_url="http://127.0.0.1:8080")
    csrs = [make_csr(p256(), CN=f"SN-{worker}-{i}", O="Test CPO") for i in range(16)]
    with open(out_path, "a", buffering=1) as out:
        issued = 0
        while issued < int(count):
            try:
                result = authority.issue_from_csr(csrs[issued % 16], CertKind.STATION_CLIENT, actor=f"w{worker}")
            except DBAPIError:
                time.sleep(0.2)  # the database is restarting: a client retries
                continue
            out.write(f"{result.record.ca_id} {result.serial}\n")
            issued += 1


if __name__ == "__main__":
    main()
