"""Small helpers for tests: CSRs with chosen keys and subjects, openssl verification."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.x509.oid import NameOID

T = TypeVar("T")

ATTR = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "C": NameOID.COUNTRY_NAME,
        "DC": NameOID.DOMAIN_COMPONENT, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME}


def name(**attrs: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(ATTR[k], v) for k, v in attrs.items()])


def make_csr(key: object, **attrs: str) -> bytes:
    algorithm = None if isinstance(key, ed448.Ed448PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(name(**attrs)).sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM)


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def p521() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP521R1())


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl_verify(leaf: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate) -> str:
    """`openssl verify -x509_strict` as an independent judge; returns its output, raises on failure."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "root.pem").write_bytes(pem(root))
        (p / "leaf.pem").write_bytes(pem(leaf))
        args = ["openssl", "verify", "-x509_strict", "-CAfile", str(p / "root.pem")]
        if chain:
            (p / "chain.pem").write_bytes(b"".join(pem(c) for c in chain))
            args += ["-untrusted", str(p / "chain.pem")]
        res = subprocess.run([*args, str(p / "leaf.pem")], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise AssertionError(f"openssl verify failed: {res.stdout}{res.stderr}")
        return res.stdout


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds (a test must not leave a
    server behind, whether or not it shut down gracefully)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drain(items: Iterable[T], work: Callable[[T], None], threads: int) -> None:
    """Run ``work`` on every item from ``threads`` threads at once (callers arriving together, as a server's pools
    do); returns when all are done and fails if a thread is still running after a minute."""
    todo = list(items)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def loop() -> None:
        start.wait()
        while True:
            with lock:
                if not todo:
                    return
                item = todo.pop()
            work(item)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool), "a worker thread did not finish"
