"""`pnc trust` and `pnc contract`: happy paths and one-line errors with exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from tests.helpers import pem
from tests.pki.iso15118.chains import oem_chain

runner = CliRunner()


@pytest.fixture
def env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PNC_DEV_MODE", "false")
    return env


def test_trust_commands(env: Path) -> None:
    root, sub1, _, _ = oem_chain("CLI OEM")
    bundle = env / "oem.pem"
    bundle.write_bytes(pem(root.cert) + pem(sub1.cert))
    res = runner.invoke(app, ["trust", "add", str(bundle), "--role", "oem", "--label", "CLI"])
    assert res.exit_code == 0, res.output
    assert res.output.count("added oem") == 2
    listing = runner.invoke(app, ["trust", "list", "--role", "oem"])
    assert listing.exit_code == 0 and "CLI" in listing.output and "sub-CA" in listing.output
    dup = runner.invoke(app, ["trust", "add", str(bundle), "--role", "oem"])
    assert dup.exit_code == 4 and "already in the trust" in dup.output
    assert runner.invoke(app, ["trust", "remove", "424242"]).exit_code == 3
    assert runner.invoke(app, ["trust", "remove", "1"]).exit_code == 0
    bad_role = runner.invoke(app, ["trust", "add", str(bundle), "--role", "cpo"])
    assert bad_role.exit_code == 1 and len(bad_role.output.strip().splitlines()) == 1


def test_contract_commands(env: Path) -> None:
    res = runner.invoke(app, ["contract", "create", "--owner", "alice", "--country", "DE", "--provider", "PNC",
                              "--pcid", "WMIV1234567890ABCD"])
    assert res.exit_code == 0, res.output
    emaid = res.output.strip().splitlines()[0]
    assert emaid.startswith("DEPNC") and len(emaid) == 15
    bad = runner.invoke(app, ["contract", "create", "--owner", "bob", "--emaid", "DE8AA0012345671"])
    assert bad.exit_code == 1 and "check digit '1' is wrong, expected '0'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert runner.invoke(app, ["contract", "cancel", emaid, "--reason", "test"]).exit_code == 0
    assert runner.invoke(app, ["contract", "cancel", emaid]).exit_code == 4
    listing = runner.invoke(app, ["contract", "list", "--status", "cancelled"])
    assert emaid in listing.output
    assert runner.invoke(app, ["contract", "cancel", "DE8AA0012345670"]).exit_code == 3
