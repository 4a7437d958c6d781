"""`pnc token` and `pnc audit` commands: verify exits non-zero on tampering, export is JSON lines."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app

runner = CliRunner()


@pytest.fixture
def env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PNC_DEV_MODE", "false")
    monkeypatch.delenv("PNC_WITH_ISO15118_20")  # the default (on), as these tests were written against
    return env


def test_token_commands_and_audit_verify(env: Path) -> None:
    res = runner.invoke(app, ["token", "create", "ops", "--role", "operator", "--scope", "certificates",
                              "--days", "7"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("pnc_")
    listing = runner.invoke(app, ["token", "list"])
    assert "ops" in listing.stdout and "certificates" in listing.stdout and res.stdout.strip() not in listing.stdout
    assert runner.invoke(app, ["token", "revoke", "ops"]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "nobody"]).exit_code == 3
    bad = runner.invoke(app, ["token", "create", "x", "--role", "superuser"])
    assert bad.exit_code == 1 and "role must be one of" in bad.output

    assert runner.invoke(app, ["audit", "checkpoint"]).exit_code == 0
    pub = runner.invoke(app, ["audit", "public-key"])
    assert "BEGIN PUBLIC KEY" in pub.stdout
    (env / "audit.pub").write_text(pub.stdout)
    ok = runner.invoke(app, ["audit", "verify", "--public-key", str(env / "audit.pub")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK:") and "1 signed checkpoint" in ok.stdout

    export = env / "audit.jsonl"
    assert runner.invoke(app, ["audit", "export", "--out", str(export)]).exit_code == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [x["type"] for x in lines][-2:] == ["checkpoint", "head"]
    assert runner.invoke(app, ["audit", "verify", "--file", str(export)]).exit_code == 0

    with sqlite3.connect(env / "var" / "pnc.db") as conn:
        conn.execute("UPDATE audit_event SET actor='mallory' WHERE sequence=1")
    bad = runner.invoke(app, ["audit", "verify", "--json"])
    assert bad.exit_code == 6
    assert json.loads(bad.stdout)["problems"][0]["kind"] == "edited"
