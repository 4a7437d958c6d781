"""`pnc` CLI: init, CA and certificate commands; errors are one line and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from tests.helpers import make_csr, openssl_verify, p256, rsa_key

runner = CliRunner()


def test_init_dev_writes_a_verifiable_pki(env: Path) -> None:
    from cryptography import x509

    out = env / "certs-dev"
    res = runner.invoke(app, ["init", "--dev", "--out", str(out), "--no-iso15118-20"])
    assert res.exit_code == 0, res.output
    assert "FOR TESTING ONLY" in (out / "README.md").read_text()
    roots = {"secc": "v2g-root", "cps": "v2g-root", "contract": "mo-root", "oem-prov": "oem-root",
             "csms-server": "csms-root", "station-client": "csms-root"}
    for leaf, root in roots.items():
        chain = x509.load_pem_x509_certificates((out / "leaf" / f"{leaf}.chain.pem").read_bytes())
        root_cert = x509.load_pem_x509_certificate((out / "trust" / f"{root}.pem").read_bytes())
        openssl_verify(chain[0], chain[1:], root_cert)
    assert (out / "ca" / "v2g-root.key.pem").stat().st_mode & 0o077 == 0
    # resumable: a second init creates nothing new
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 0 and "created 0 CA(s)" in again.output


def test_init_dev_with_iso15118_20_every_chain_verifies(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default `pnc init --dev` (with -20): every CA and every sample leaf passes `openssl verify -x509_strict`
    against the roots in trust/, with all CA certificates as the untrusted pool."""
    import subprocess

    from cryptography import x509

    monkeypatch.setenv("PNC_WITH_ISO15118_20", "true")
    out = env / "certs-dev"
    res = runner.invoke(app, ["init", "--dev", "--out", str(out)])
    assert res.exit_code == 0, res.output
    trust = out / "trust-all.pem"
    trust.write_bytes(b"".join(p.read_bytes() for p in sorted((out / "trust").glob("*.pem"))))
    pool = out / "ca-all.pem"
    pool.write_bytes(b"".join(p.read_bytes() for p in sorted((out / "ca").glob("*.pem"))
                              if not p.name.endswith(".key.pem")))
    leaves = sorted(p for p in (out / "leaf").glob("*.pem") if not p.name.endswith((".key.pem", ".chain.pem")))
    cas = sorted(p for p in (out / "ca").glob("*.pem") if not p.name.endswith(".key.pem"))
    assert {p.stem for p in leaves} >= {"secc20", "cps20", "contract20", "oem-prov20"}
    assert any("20-" in p.stem for p in cas)
    for cert in [*cas, *leaves]:
        r = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(trust), "-untrusted", str(pool),
                            str(cert)], capture_output=True, text=True, check=False)
        assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), (cert.name, r.stdout, r.stderr)
    contract20 = x509.load_pem_x509_certificate((out / "leaf" / "contract20.pem").read_bytes())
    assert contract20.signature_hash_algorithm is not None and contract20.signature_hash_algorithm.name == "sha512"


def test_ca_and_cert_commands(env: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    listing = runner.invoke(app, ["ca", "list"])
    assert listing.exit_code == 0 and "cpo-sub2" in listing.output
    show = runner.invoke(app, ["ca", "show", "v2g-root", "--pem"])
    assert show.output.startswith("-----BEGIN CERTIFICATE-----")
    csr = env / "req.pem"
    csr.write_bytes(make_csr(rsa_key(), CN="SN-5", O="pnc-pki Dev"))
    issued = runner.invoke(app, ["cert", "issue", "--csr", str(csr), "--kind", "station-client", "--owner", "CS-5",
                                 "--out", str(env / "chain.pem")])
    assert issued.exit_code == 0, issued.output
    assert (env / "chain.pem").read_text().count("BEGIN CERTIFICATE") == 2
    lst = runner.invoke(app, ["cert", "list", "--owner", "CS-5"])
    assert "SN-5" in lst.output
    from cryptography import x509

    serial = format(x509.load_pem_x509_certificates((env / "chain.pem").read_bytes())[0].serial_number, "x")
    show = runner.invoke(app, ["cert", "show", serial])
    assert show.exit_code == 0 and "station-client" in show.output
    export = runner.invoke(app, ["cert", "export", serial, "--chain"])
    assert export.exit_code == 0 and export.output.count("BEGIN CERTIFICATE") == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ca", "show", "nope"], 3, "no CA named 'nope'"),
        (["cert", "show", "99999"], 3, "no certificate with id 99999"),
        (["cert", "export", "1", "--format", "xml"], 1, "--format must be pem or der"),
        (["cert", "show", "abcdef"], 3, "no certificate with serial abcdef"),
        (["cert", "show", "¹"], 3, "no certificate with serial ¹"),  # isdigit() but not int(): was a traceback
    ],
)
def test_errors_are_one_line_with_exit_codes(env: Path, args: list[str], code: int, message: str) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == code
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_policy_refusal_exit_code(env: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    csr = env / "weak.pem"
    csr.write_bytes(make_csr(rsa_key(1024), CN="SN-1", O="pnc-pki Dev"))
    res = runner.invoke(app, ["cert", "issue", "--csr", str(csr), "--kind", "station-client"])
    assert res.exit_code == 1 and "RSA-1024 is not allowed" in res.output
    csr.write_bytes(make_csr(p256(), CN="x", O="y"))
    missing = runner.invoke(app, ["cert", "issue", "--csr", str(env / "none.pem"), "--kind", "station-client"])
    assert missing.exit_code == 2  # usage error from typer: the file does not exist


def test_help_everywhere() -> None:
    for args in (["--help"], ["ca", "--help"], ["cert", "--help"], ["cert", "issue", "--help"], ["init", "--help"],
                 ["serve", "--help"], ["token", "create", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output
