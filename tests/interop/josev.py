"""Drive Josev (the `iso15118` package, the independent EV) from the pnc-pki test process.

Josev runs in its own venv (tests/interop/setup_josev.sh, or `make oracle`) with Java for EXIficient; one process
(one JVM) serves a whole test module through JSON lines (see josev_ev.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.iso15118.xmldsig import load_exi_codec

REPO = Path(__file__).resolve().parents[2]
JOSEV = REPO / ".josev-venv" / "bin" / "python"
SCRIPT = Path(__file__).with_name("josev_ev.py")


def skip_reason() -> str | None:
    if not JOSEV.exists():
        return "Josev venv missing: run tests/interop/setup_josev.sh (or make oracle)"
    if shutil.which("java") is None:
        return "java not found"
    if load_exi_codec() is None:
        return "ISO 15118 EXI codec (pki.iso15118.exi) not in this build"
    return None


class Josev:
    """One Josev process (one JVM); commands are JSON lines (see josev_ev.py)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(JOSEV), str(SCRIPT), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def call(self, **command: object) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the Josev process exited")
        answer: dict[str, object] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"Josev failed: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def josev_process() -> Iterator[Josev]:
    """Body of a module-scoped fixture: skips when Josev cannot run."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    ev = Josev()
    try:
        yield ev
    finally:
        ev.close()


def write_ev_files(tmp: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                   v2g_root: x509.Certificate) -> dict[str, Path]:
    """The files Josev reads: OEM provisioning key (PEM) and certificate (DER), the V2G root (DER)."""
    files = {"key": tmp / "oem.key.pem", "cert": tmp / "oem.der", "root": tmp / "v2g-root.der"}
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    files["root"].write_bytes(v2g_root.public_bytes(serialization.Encoding.DER))
    return files
