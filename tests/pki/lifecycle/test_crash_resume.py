"""Kill the process in the middle of a rotation; `pnc job resume` finishes it without duplicate messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.context import bootstrap, build_services
from api.lifecycle import lifecycle_for
from api.settings import Settings
from pki.lifecycle.simulator import SimulatedFleet
from pki.store.models import JobStatus
from tests.pki.lifecycle.fleet import build_fleet

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "PNC_DATA_DIR": str(tmp_path / "var"), "PNC_KEY_PASSPHRASE": "crash-test", "PNC_WITH_ISO15118_20": "false",
        "PNC_ORGANIZATION": "Test CPO", "PNC_LIFECYCLE_GATEWAY": "tests.pki.lifecycle.fleet:gateway_from_env",
        "PNC_SIM_STATE": str(tmp_path / "fleet.json"), "PNC_LIFECYCLE_GRACE_HOURS": "0",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_kill_mid_rotation_then_cli_resume(env: dict[str, str]) -> None:
    services = build_services(Settings())
    bootstrap(services)
    lc = lifecycle_for(services, gateway=SimulatedFleet())  # fleet built against the same database
    build_fleet(services.authority, lc.stations, 20, state_file=Path(env["PNC_SIM_STATE"]), with_v2g=False)
    services.close()

    proc = subprocess.run([sys.executable, "-m", "tests.pki.lifecycle.crash_runner", "37"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    job_id = int(proc.stdout.split()[0])
    killed = SimulatedFleet(Path(env["PNC_SIM_STATE"]))
    assert 0 < len(killed.messages) == 37  # it really died mid-roll-out

    runner = CliRunner()
    res = runner.invoke(app, ["job", "resume", str(job_id)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["job", "show", str(job_id)])
    assert "completed" in res.output and "20 installed, 0 pending, 0 failed" in res.output, res.output

    fleet = SimulatedFleet(Path(env["PNC_SIM_STATE"]))
    for sid in fleet.fleet:
        actions = Counter(m.action for m in fleet.sent(sid))
        assert actions == {"InstallCertificate": 1, "GetInstalledCertificateIds": 1, "TriggerMessage": 1,
                           "DeleteCertificate": 1}, (sid, actions)
        roots = fleet.root_certificates(sid, "CSMSRootCertificate")
        assert len(roots) == 1 and "G2" in roots[0].subject.rfc4514_string()
    svc = build_services(Settings())
    try:
        assert svc.authority.ca("csms-root").status == "retired"
        job = lifecycle_for(svc).engine.get(job_id)
        assert job.status == JobStatus.COMPLETED
        # one new station certificate per station: the resumed run did not trigger a second renewal
        new_sub = svc.authority.ca("csms-sub-g2")
        from pki.store import repo

        assert len(repo.list_certificates(svc.db, kind="station-client", ca_id=new_sub.id, limit=100)) == 20
    finally:
        svc.close()
