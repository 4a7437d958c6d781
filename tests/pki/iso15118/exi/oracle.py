"""EXIficient (EXICodec.jar from the `iso15118` wheel) driven through py4j, as a TEST ORACLE ONLY.

The jar and py4j live in a separate venv (``tests/oracle/setup_oracle.sh`` → ``<repo>/.oracle-venv``);
py4j is imported from that venv's site-packages.  The gateway is started with ``enable_auth=True``
(no other local process can drive the JVM) and ``die_on_exit=True``; every call goes through one
lock because the Java codec flips a shared fragment flag per call.
"""

from __future__ import annotations

import base64
import glob
import json
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
# PNC_EXI_ORACLE_VENV points elsewhere (e.g. a shared venv, or a missing path to check the loud skip)
VENV = Path(os.environ.get("PNC_EXI_ORACLE_VENV", str(REPO / ".oracle-venv")))


def find_oracle() -> tuple[Path, Path] | str:
    """(site-packages, jar) or the reason the oracle is unavailable."""
    if shutil.which("java") is None:
        return "java not found (apt-get install openjdk-17-jre-headless)"
    sites = glob.glob(str(VENV / "lib" / "python3*" / "site-packages"))
    if not sites:
        return f"oracle venv missing at {VENV}: run tests/oracle/setup_oracle.sh"
    site = Path(sites[0])
    jar = site / "iso15118" / "shared" / "EXICodec.jar"
    if not jar.exists() or not (site / "py4j").exists():
        return f"EXICodec.jar or py4j missing in {site}: run tests/oracle/setup_oracle.sh"
    return site, jar


def to_json(tree: Any, key: str = "") -> Any:
    """The codec's tree → Josev/EXIficient JSON (base64 for base64Binary, hex for hexBinary)."""
    if isinstance(tree, bytes):
        return tree.hex().upper() if key == "SessionID" else base64.b64encode(tree).decode()
    if isinstance(tree, dict):
        return {k: to_json(v, k) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_json(v, key) for v in tree]
    return tree


class Oracle:
    def __init__(self, site: Path, jar: Path) -> None:
        if str(site) not in sys.path:
            sys.path.append(str(site))  # appended: the test venv's own packages keep priority
        from py4j.java_gateway import JavaGateway

        logging.getLogger("py4j").setLevel(logging.CRITICAL)
        self._lock = threading.Lock()
        self.gateway = JavaGateway.launch_gateway(
            classpath=str(jar),
            die_on_exit=True,
            enable_auth=True,
            redirect_stdout=None,
            javaopts=["--add-opens", "java.base/java.lang=ALL-UNNAMED", "-Xmx192m"],
        )
        self.codec = self.gateway.jvm.com.siemens.ct.exi.main.cmd.EXICodec()

    def encode(self, tree: Any, namespace: str) -> bytes:
        with self._lock:
            out = self.codec.encode(json.dumps(to_json(tree)), namespace)
            if out is None:
                raise RuntimeError(f"EXIficient encode failed: {self.codec.get_last_encoding_error()}")
            return bytes(out)

    def decode(self, data: bytes, namespace: str) -> Any:
        with self._lock:
            out = self.codec.decode(data, namespace)
            if out is None:
                raise RuntimeError(f"EXIficient decode failed: {self.codec.get_last_decoding_error()}")
            return json.loads(out)

    def close(self) -> None:
        self.gateway.shutdown()
