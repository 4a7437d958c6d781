"""A real uvicorn server (own thread, free port) over the test services, plus openssl helpers."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509

from api.app import create_app
from api.context import Services
from pki.authority import Issued
from pki.profiles import CertKind
from tests.helpers import free_port, name, p256, pem


@dataclass
class Server:
    url: str
    services: Services
    tmp: Path
    ocsp: str = ""  # base URL that answers /ocsp: the main port, or the dedicated listener's
    app: Any = None

    def __post_init__(self) -> None:
        self.ocsp = self.ocsp or self.url


BINDINGS = pytest.mark.parametrize("server", ["asgi", "listener"], indirect=True)  # both OCSP front ends


@pytest.fixture
def server(services: Services, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """uvicorn in a thread; with the param ``listener`` also the dedicated OCSP listener (PNC_OCSP_PORT)."""
    listener = getattr(request, "param", "asgi") == "listener"
    services.settings.ocsp_port = free_port() if listener else None
    port = free_port()
    app = create_app(services=services)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        ocsp = f"http://127.0.0.1:{services.settings.ocsp_port}" if listener else ""
        yield Server(f"http://127.0.0.1:{port}", services, tmp_path, ocsp, app)
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


def issue_station(services: Services, cn: str = "CS0001") -> Issued:
    return services.authority.issue_for_public_key(
        CertKind.STATION_CLIENT, name(CN=cn, O="Test CPO"), p256().public_key(),
        issuer=services.authority.ca("csms-sub"))


def issue_secc(services: Services, cn: str = "DEPNCE0001") -> Issued:
    return services.authority.issue_for_public_key(
        CertKind.SECC_LEAF, name(CN=cn, O="Test CPO", DC="CPO"), p256().public_key(),
        issuer=services.authority.ca("cpo-sub2"))


@dataclass
class Files:
    """PEM files openssl needs for one leaf: the leaf, its issuer, the intermediates and the root."""

    cert: Path
    issuer: Path
    chain: Path
    root: Path


def files_for(services: Services, issued: Issued, tmp: Path, label: str) -> Files:
    a = services.authority
    issuer_ca = a.ca_by_id(issued.record.ca_id)
    root = a.ca_certificate(a.root_of(issuer_ca))
    chain = list(a.chain(issuer_ca)) or [a.ca_certificate(issuer_ca)]
    f = Files(tmp / f"{label}.pem", tmp / f"{label}.issuer.pem", tmp / f"{label}.chain.pem", tmp / f"{label}.root.pem")
    f.cert.write_bytes(pem(issued.certificate))
    f.issuer.write_bytes(pem(a.ca_certificate(issuer_ca)))
    f.chain.write_bytes(b"".join(pem(c) for c in chain))
    f.root.write_bytes(pem(root))
    return f


def openssl_ocsp(f: Files, url: str | None, *extra: str, sha: str | None = None, certs: list[Path] | None = None,
                 respin: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = ["openssl", "ocsp", "-issuer", str(f.issuer)]
    if sha:
        args.append(f"-{sha}")  # must come before -cert
    for c in certs or [f.cert]:
        args += ["-cert", str(c)]
    if url:
        args += ["-url", url]
    if respin:
        args += ["-respin", str(respin)]
    args += ["-CAfile", str(f.root), "-verify_other", str(f.chain), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def status_line(result: subprocess.CompletedProcess[str], cert: Path) -> str:
    for line in result.stdout.splitlines():
        if line.startswith(f"{cert}: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no status line for {cert}: {result.stdout}{result.stderr}")


def load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)
