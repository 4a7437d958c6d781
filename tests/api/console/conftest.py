"""Console end-to-end fixtures: the real service (``pnc serve`` under uvicorn, development PKI) on a free port, seeded
through its REST API, and one headless Debian Chromium driven by Selenium + chromedriver for the whole module.

No browser is downloaded: the test uses /usr/bin/chromium and /usr/bin/chromedriver (Debian ``chromium`` and
``chromium-driver``) and skips loudly when they are absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, make_csr, p256, stop_process

CHROMIUM = os.environ.get("PNC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PNC_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"]


@dataclass
class LiveServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    seeded: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"},
                             timeout=30, **kw)

    def has_route(self, method: str, path: str) -> bool:
        spec = httpx.get(self.url + "/openapi.json", timeout=30).json()
        return method.lower() in spec.get("paths", {}).get(path, {})


def _seed(server: LiveServer) -> None:
    """Certificates expiring at different distances (two kinds, so the chart stacks) through the public REST API."""
    ids = []
    for i, days in enumerate((10, 24, 45, 45, 80, 150)):
        csr = make_csr(p256(), CN=f"SN-CONSOLE-{i}", O="pnc-pki Dev").decode()
        body = {"kind": "station-client", "csr": csr, "owner": f"CS-CONSOLE-{i}", "validity_days": days}
        resp = server.api("POST", "/api/v1/certificates", json=body)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["certificate"]["id"])
    for i, days in enumerate((30, 60)):
        csr = make_csr(p256(), CN=f"csms{i}.example.net", O="pnc-pki Dev").decode()
        resp = server.api("POST", "/api/v1/certificates", json={"kind": "csms-server", "csr": csr,
                                                                 "validity_days": days, "owner": f"csms{i}"})
        assert resp.status_code == 201, resp.text
    server.seeded["station_ids"] = ids


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("console-var")
    port = free_port()
    env = {**os.environ, "PNC_DATA_DIR": str(data), "PNC_PORT": str(port), "PNC_HOST": "127.0.0.1",
           "PNC_PUBLIC_URL": f"http://127.0.0.1:{port}", "PNC_KEY_PASSPHRASE": "console-test",
           "PNC_WITH_ISO15118_20": "false"}
    env.pop("PNC_DATABASE_URL", None)  # this server keeps its own SQLite file
    log = data / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli.main", "serve"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready within 40 s: {log.read_text()[-2000:]}")
            time.sleep(0.1)  # polling a real process' port: there is no clock to inject
        token = (data / "admin-token").read_text().strip()
        server = LiveServer(url, token, proc, log)
        _seed(server)
        yield server
    finally:
        stop_process(proc)


def chromium_missing() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        return ("CHROMIUM NOT INSTALLED — operator console browser tests SKIPPED: missing "
                + ", ".join(missing) + " (apt-get install -y chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "SELENIUM NOT INSTALLED — operator console browser tests SKIPPED (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = chromium_missing()
    if reason:
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()
