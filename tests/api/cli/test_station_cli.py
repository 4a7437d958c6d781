"""`pnc station`: register, list, show, queue commands (into the outbox the server delivers), remove."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from api.cli.main import app
from api.context import build_services
from api.settings import Settings
from pki import stations
from pki.store import ocpp_repo

runner = CliRunner()


def test_station_add_list_show_command_remove(env: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    res = runner.invoke(app, ["station", "add", "CLI1", "--serial", "SN-CLI1", "--org", "Test CPO",
                              "--secc", "DE*PNC*E12345*1"])
    assert res.exit_code == 0, res.output
    password = re.search(r"password: (\S+)", res.output)
    assert password is not None
    svc = build_services(Settings())
    station = ocpp_repo.get_station(svc.db, "CLI1")
    assert station is not None and stations.verify_password(password.group(1), station.password_hash)
    assert runner.invoke(app, ["station", "add", "CLI1", "--serial", "x", "--org", "y"]).exit_code == 4
    assert "CLI1" in runner.invoke(app, ["station", "list"]).output
    root = env / "root.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    root.write_bytes(svc.authority.ca_certificate(svc.authority.ca("v2g-root")).public_bytes(Encoding.PEM))
    res = runner.invoke(app, ["station", "command", "InstallCertificate", "-s", "CLI1", "--certificate", str(root),
                              "--certificate-type", "V2GRootCertificate"])
    assert res.exit_code == 0 and "queued #" in res.output, res.output
    res = runner.invoke(app, ["station", "command", "TriggerMessage", "--org", "Test CPO", "--payload",
                              '{"requestedMessage": "SignV2GCertificate"}'])
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["station", "command", "TriggerMessage", "-s", "CLI1", "--payload", '{"x": 1}'])
    assert bad.exit_code == 1 and "not a valid OCPP" in bad.output
    sub = env / "sub.pem"
    sub.write_bytes(svc.authority.ca_certificate(svc.authority.ca("cpo-sub1")).public_bytes(Encoding.PEM))
    assert runner.invoke(app, ["station", "command", "InstallCertificate", "-s", "CLI1", "--certificate", str(sub),
                               "--certificate-type", "V2GRootCertificate"]).exit_code == 1
    assert [r.action for r in ocpp_repo.list_outbox(svc.db, station_id="CLI1")] == ["InstallCertificate",
                                                                                   "TriggerMessage"]
    assert '"TriggerMessage"' in runner.invoke(app, ["station", "show", "CLI1"]).output
    assert runner.invoke(app, ["station", "remove", "CLI1"]).exit_code == 0
    assert runner.invoke(app, ["station", "show", "CLI1"]).exit_code == 3
