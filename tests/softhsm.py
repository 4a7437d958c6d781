"""SoftHSM2 fixtures: one token per test session (SoftHSM reads SOFTHSM2_CONF once per process), emptied after each
test so CA key labels never collide. Tests skip LOUDLY when Debian's softhsm2 is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN = "pnc-test"
PIN = "8642-test-user-pin"
SO_PIN = "97531-test-so-pin"


@dataclass(frozen=True)
class SoftHsm:
    module: str
    token: str
    pin: str
    conf: Path


def softhsm_module() -> str | None:
    if shutil.which("softhsm2-util") is None:
        return None
    return next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)


SKIP_REASON = ("SKIPPED LOUDLY: SoftHSM2 is not installed (apt-get install softhsm2); the PKCS#11 key store is NOT "
               "tested in this run")


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    module = softhsm_module()
    if module is None:
        warnings.warn(SKIP_REASON, stacklevel=1)
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", PIN],
                   check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    return SoftHsm(module, TOKEN, PIN, conf)


def empty_token(hsm: SoftHsm) -> None:
    with hsm_session(hsm) as session:
        for obj in list(session.get_objects()):
            obj.destroy()


def hsm_session(hsm: SoftHsm) -> Any:
    import pkcs11

    from pki.keys.pkcs11 import open_session

    return open_session(pkcs11.lib(hsm.module).get_token(token_label=hsm.token), hsm.pin)


@pytest.fixture
def hsm(softhsm_token: SoftHsm) -> Iterator[SoftHsm]:
    """The session token, emptied after the test."""
    try:
        yield softhsm_token
    finally:
        empty_token(softhsm_token)
