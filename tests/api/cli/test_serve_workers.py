"""`pnc serve --workers N`: the first-start duties run once, then N worker processes share the SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.helpers import free_port, make_csr, p256, stop_process

ROOT = Path(__file__).resolve().parents[3]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def test_two_workers_on_one_sqlite_database(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "var"
    env = {**os.environ, "PNC_DATA_DIR": str(data), "PNC_PORT": str(port), "PNC_HOST": "127.0.0.1",
           "PNC_PUBLIC_URL": url, "PNC_WITH_ISO15118_20": "false", "PNC_LOG_FORMAT": "text"}
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
        assert httpx.get(url + "/ready", timeout=5).status_code == 200
        workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, log.read_text()[-3000:]
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
    finally:
        stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_workers_must_be_positive(tmp_path: Path) -> None:
    env = {**os.environ, "PNC_DATA_DIR": str(tmp_path / "var")}
    res = subprocess.run([sys.executable, "-m", "api.cli.main", "serve", "--workers", "0"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and "--workers must be at least 1" in res.stderr
