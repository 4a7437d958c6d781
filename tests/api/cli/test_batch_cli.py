"""`pnc cert issue-batch`: a directory of CSRs to chain files, refusals listed, reruns issue only what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from api.cli.main import app
from tests.helpers import make_csr, openssl_verify, p256, rsa_key

runner = CliRunner()


@pytest.fixture
def env(env: Path) -> Path:
    assert runner.invoke(app, ["init"]).exit_code == 0
    return env


def _root(env: Path) -> x509.Certificate:
    res = runner.invoke(app, ["ca", "show", "csms-root", "--pem"])
    assert res.exit_code == 0, res.output
    return x509.load_pem_x509_certificate(res.output.encode())


def test_issue_batch_writes_verifiable_chains_and_resumes(env: Path) -> None:
    csrs, out = env / "csrs", env / "out"
    csrs.mkdir()
    for i in range(5):
        (csrs / f"CS-{i}.csr").write_bytes(make_csr(p256(), CN=f"SN-{i}", O="pnc-pki Dev"))
    (csrs / "notes.txt").write_text("not a CSR, ignored")
    res = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(csrs), "--out", str(out),
                              "--kind", "station-client", "--chunk", "2"])
    assert res.exit_code == 0, res.output
    assert "issued 5, not issued 0, skipped 0" in res.output
    root = _root(env)
    for i in range(5):
        chain = x509.load_pem_x509_certificates((out / f"CS-{i}.pem").read_bytes())
        assert len(chain) == 2 and f"CN=SN-{i}" in chain[0].subject.rfc4514_string()
        openssl_verify(chain[0], chain[1:], root)
    listed = runner.invoke(app, ["cert", "list", "--owner", "CS-3"])
    assert "SN-3" in listed.output  # the file stem is the owner
    # resume: a lost output is issued again, the others are skipped
    (out / "CS-1.pem").unlink()
    again = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(csrs), "--out", str(out),
                                "--kind", "station-client"])
    assert again.exit_code == 0 and "issued 1, not issued 0, skipped 4" in again.output
    assert not list(out.glob(".*.tmp"))


def test_refused_csrs_are_listed_and_exit_1(env: Path) -> None:
    csrs, out = env / "csrs", env / "out"
    csrs.mkdir()
    (csrs / "good.pem").write_bytes(make_csr(p256(), CN="SN-1", O="pnc-pki Dev"))
    (csrs / "weak.pem").write_bytes(make_csr(rsa_key(1024), CN="SN-2", O="pnc-pki Dev"))
    (csrs / "other.csr").write_bytes(make_csr(p256(), CN="SN-3", O="Someone Else"))
    (csrs / "junk.der").write_bytes(b"\x30\x03junk")
    res = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(csrs), "--out", str(out),
                              "--kind", "station-client", "--expect-o", "pnc-pki Dev"])
    assert res.exit_code == 1
    assert "weak.pem: InvalidKey" in res.output and "other.csr: InvalidSubject" in res.output
    assert "junk.der: InvalidRequest" in res.output and "issued 1, not issued 3" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["good.pem"]


def test_batch_usage_errors_are_one_line(env: Path) -> None:
    empty = env / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(empty), "--out", str(env / "o"),
                              "--kind", "station-client"])
    assert res.exit_code == 1 and "no CSR files" in res.output and "Traceback" not in res.output
    (empty / "a.csr").write_bytes(make_csr(p256(), CN="SN-1", O="pnc-pki Dev"))
    (empty / "a.pem").write_bytes(make_csr(p256(), CN="SN-2", O="pnc-pki Dev"))
    clash = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(empty), "--out", str(env / "o"),
                                "--kind", "station-client"])
    assert clash.exit_code == 1 and "share a stem" in clash.output
    (empty / "a.pem").unlink()
    ca = runner.invoke(app, ["cert", "issue-batch", "--csr-dir", str(empty), "--out", str(env / "o"),
                             "--kind", "secc-leaf", "--issuer", "nope"])
    assert ca.exit_code == 3
