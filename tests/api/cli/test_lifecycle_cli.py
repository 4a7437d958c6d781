"""`pnc root rotate --dry-run`, `pnc job ...`, `pnc ca renew|retire`, `pnc cert expiring` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app

runner = CliRunner()


@pytest.fixture
def env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PNC_LIFECYCLE_GATEWAY", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    return env


def test_rotate_dry_run_changes_nothing(env: Path) -> None:
    res = runner.invoke(app, ["root", "rotate", "--hierarchy", "csms", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "csms-root-g2" in res.output and "csms-sub-g2" in res.output and "link certificate" in res.output
    js = runner.invoke(app, ["root", "rotate", "--hierarchy", "v2g", "--dry-run", "--json"])
    plan = json.loads(js.output)
    assert plan["new_cas"]["cpo-sub2"] == "cpo-sub2-g2" and plan["link_certificate"] is False
    assert runner.invoke(app, ["ca", "show", "csms-root-g2"]).exit_code == 3  # nothing created
    assert runner.invoke(app, ["job", "show", "1"]).exit_code == 3


def test_rotate_with_the_default_outbox_gateway_and_no_stations_completes(env: Path) -> None:
    res = runner.invoke(app, ["root", "rotate", "--hierarchy", "oem", "--rate", "0"])
    assert res.exit_code == 0, res.output
    assert "completed" in res.output and "oem-root retired" in res.output
    assert json.loads(runner.invoke(app, ["job", "show", "1", "--json"]).output)["status"] == "completed"


def test_rotate_without_gateway_prepares_and_waits_then_cancel(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNC_LIFECYCLE_GATEWAY", "")  # explicitly switched off
    res = runner.invoke(app, ["root", "rotate", "--hierarchy", "oem", "--rate", "0"])
    assert res.exit_code == 0, res.output
    assert "waiting" in res.output and "gateway" in res.output
    assert runner.invoke(app, ["ca", "show", "oem-sub2-g2"]).exit_code == 0
    shown = runner.invoke(app, ["job", "show", "1", "--json"])
    assert json.loads(shown.output)["status"] == "waiting"
    again = runner.invoke(app, ["root", "rotate", "--hierarchy", "oem"])
    assert again.exit_code == 4 and "already rotating" in again.output  # one rotation per root at a time
    assert runner.invoke(app, ["job", "cancel", "1"]).exit_code == 0
    assert runner.invoke(app, ["job", "cancel", "1"]).exit_code == 4
    assert runner.invoke(app, ["job", "show", "99"]).exit_code == 3


def test_ca_renew_retire_and_expiring(env: Path) -> None:
    res = runner.invoke(app, ["ca", "renew", "csms-sub"])
    assert res.exit_code == 0 and "csms-sub-g2" in res.output, res.output
    assert runner.invoke(app, ["ca", "renew", "csms-root"]).exit_code == 1
    assert runner.invoke(app, ["ca", "retire", "csms-sub"]).exit_code == 0
    exp = runner.invoke(app, ["cert", "expiring", "--within", "800d", "--json"])
    assert exp.exit_code == 0, exp.output
    kinds = {e["kind"] for e in json.loads(exp.output)}
    assert "cpo-sub2" in kinds and "csms-root" not in kinds  # 2-year sub-CA yes, 20-year root no
    bad = runner.invoke(app, ["cert", "expiring", "--within", "soon"])
    assert bad.exit_code == 1 and "duration" in bad.output
