"""`pnc serve --workers N`: the first-start duties run once, then N worker processes share the SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, make_csr, p256, stop_process

ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    url: str
    data: Path
    log: Path
    ocsp_port: int


@contextmanager
def two_workers(tmp_path: Path) -> Iterator[Served]:
    """`pnc serve --workers 2` on SQLite in a fresh data directory, until both workers have started; stopped
    afterwards, and its log must hold no traceback."""
    port, ocsp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "var"
    env = {**os.environ, "PNC_DATA_DIR": str(data), "PNC_PORT": str(port), "PNC_HOST": "127.0.0.1",
           "PNC_PUBLIC_URL": url, "PNC_WITH_ISO15118_20": "false", "PNC_LOG_FORMAT": "text",
           "PNC_OCSP_PORT": str(ocsp_port)}
    env.pop("PNC_DATABASE_URL", None)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli.main", "serve", "--workers", "2"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield Served(proc, port, url, data, log, ocsp_port)
    finally:
        stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_two_workers_on_one_sqlite_database(tmp_path: Path) -> None:
    with two_workers(tmp_path) as served:
        proc, url, data = served.proc, served.url, served.data
        assert httpx.get(url + "/ready", timeout=5).status_code == 200
        workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, served.log.read_text()[-3000:]
        auth = {"Authorization": f"Bearer {(data / 'admin-token').read_text().strip()}"}  # created once

        def issue(i: int) -> httpx.Response:
            csr = make_csr(p256(), CN=f"SN-WORKERS-{i}", O="pnc-pki Dev").decode()
            with httpx.Client(timeout=20) as client:  # one connection each: both workers accept
                return client.post(url + "/api/v1/certificates", headers=auth,
                                   json={"kind": "station-client", "csr": csr})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(issue, range(60)))
        assert [a.status_code for a in answers] == [201] * 60, [a.text for a in answers if a.status_code != 201]
        serials = {a.json()["certificate"]["serial"] for a in answers}
        assert len(serials) == 60
        listed = httpx.get(url + "/api/v1/certificates", headers=auth, timeout=10,
                           params={"kind": "station-client", "limit": 500}).json()
        assert serials <= {c["serial"] for c in listed}  # every certificate a client got is in the database
        # one development PKI, not one per worker
        cas = httpx.get(url + "/api/v1/cas", headers=auth, timeout=10).json()
        names = [c["name"] for c in cas]
        assert len(names) == len(set(names))
        # both workers listen on the dedicated OCSP port (SO_REUSEPORT) and answer for the same certificates
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        leaf, issuer = x509.load_pem_x509_certificates(answers[0].json()["chain_pem"].encode())[:2]
        der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build() \
            .public_bytes(serialization.Encoding.DER)
        processes = set()
        for _ in range(24):  # a new connection each: the kernel spreads them over the two listening sockets
            answer = httpx.post(f"http://127.0.0.1:{served.ocsp_port}/ocsp", content=der, timeout=10,
                                headers={"Content-Type": "application/ocsp-request"})
            assert ocsp.load_der_ocsp_response(answer.content).certificate_status is ocsp.OCSPCertStatus.GOOD
            processes.add(answer.headers["x-request-id"][:8])  # generated ids start with a per-process prefix
        assert len(processes) == 2


def test_workers_must_be_positive(tmp_path: Path) -> None:
    env = {**os.environ, "PNC_DATA_DIR": str(tmp_path / "var")}
    res = subprocess.run([sys.executable, "-m", "api.cli.main", "serve", "--workers", "0"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "--workers must be at least 1" in res.stderr


def test_contract_installations_through_two_workers(tmp_path: Path) -> None:
    """Plug & Charge with `--workers 2`: stations connected to whichever worker accepted them get their EVs'
    contract certificates (ISO 15118-2 Install over OCPP 2.0.1), each contract certificate once in the database."""
    import asyncio
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from ocpp.v201 import call

    from api.context import build_services
    from api.settings import Settings
    from pki.profiles import CertKind
    from pki.store import contract_repo
    from tests.api.ocpp.conftest import register, run
    from tests.api.ocpp.stations_sim import connect
    from tests.pki.iso15118 import ev

    with two_workers(tmp_path) as served:
        # an operator's process on the same database: stations, vehicles (OEM provisioning certificates), contracts
        svc = build_services(Settings(data_dir=served.data, public_url=served.url, with_iso15118_20=False))
        try:
            auth = svc.authority
            root = auth.ca_certificate(auth.ca("v2g-root"))
            requests = []
            for i in range(12):
                pcid = f"WMIW{i:013d}X"
                key = ec.generate_private_key(ec.SECP256R1())
                cert = auth.issue_for_public_key(CertKind.OEM_PROV_LEAF, x509.Name([
                    x509.NameAttribute(NameOID.COMMON_NAME, pcid)]), key.public_key(), issuer=auth.ca("oem-sub2")
                ).certificate
                svc.contracts.registry.create(owner="test", country="DE", provider="PNC", pcid=pcid)
                register(svc, f"CSW{i}")
                exi = ev.install_request(svc.contracts.installer.codec, key, cert, [root])
                requests.append(base64.b64encode(exi).decode())

            async def station(i: int) -> object:
                async with connect(f"ws://127.0.0.1:{served.port}/ocpp", f"CSW{i}") as cp:
                    return await cp.call(call.Get15118EVCertificate(
                        iso15118_schema_version=ev.NS2, action="Install", exi_request=requests[i]))

            async def all_stations() -> list[object]:
                return list(await asyncio.gather(*(station(i) for i in range(len(requests)))))

            answers: list[Any] = run(all_stations(), 60)  # type: ignore[assignment]
            assert [a.status for a in answers] == ["Accepted"] * len(requests), answers
            contracts = contract_repo.list_contracts(svc.db, owner="test", limit=100)
            assert len(contracts) == len(requests) and all(c.certificate_id for c in contracts)
            assert len({c.certificate_id for c in contracts}) == len(requests)
        finally:
            svc.close()
