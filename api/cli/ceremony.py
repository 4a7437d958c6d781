"""`pnc ceremony`: the offline root, run on a machine that never runs the service; and the online `pnc ca
request-subca / import-subca / import-root` commands that move only CSRs and certificates across the air gap.

The ceremony keeps everything in ``--dir``: ``ceremony.db`` (its own database and audit chain) and ``keys/``
(encrypted PKCS#8, passphrase from PNC_CEREMONY_PASSPHRASE, PNC_CEREMONY_PASSPHRASE_FILE or a hidden prompt), or an
HSM with ``--key-scheme pkcs11`` (PNC_PKCS11_MODULE/_TOKEN/_PIN as for the service).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from api.settings import Settings
from pki.ceremony import OfflineRoot, import_root, import_sub_ca, request_sub_ca, subject_name
from pki.errors import InvalidRequest
from pki.keys.base import KeyAlgorithm, KeyManager
from pki.keys.file import FileKeyStore
from pki.profiles import CertKind, Generation

ceremony_app = typer.Typer(help="Offline root ceremony (never on the service host).", no_args_is_help=True)
err = Console(stderr=True)

DirOpt = Annotated[Path, typer.Option("--dir", help="Ceremony directory (removable, encrypted media).")]
SchemeOpt = Annotated[str, typer.Option("--key-scheme", help="file (encrypted PKCS#8 in --dir/keys) or pkcs11.")]


def _passphrase() -> bytes:
    value = os.environ.get("PNC_CEREMONY_PASSPHRASE")
    if value:
        return value.encode()
    path = os.environ.get("PNC_CEREMONY_PASSPHRASE_FILE")
    if path:
        return Path(path).read_bytes().strip()
    if not sys.stdin.isatty():
        raise InvalidRequest("set PNC_CEREMONY_PASSPHRASE(_FILE) or run interactively")
    entered: str = typer.prompt("ceremony key passphrase", hide_input=True)
    return entered.encode()


def _open(directory: Path, scheme: str) -> OfflineRoot:
    keys = KeyManager(default_scheme=scheme)
    if scheme == "file":
        keys.register(FileKeyStore(directory / "keys", _passphrase()))
    elif scheme == "pkcs11":
        from pki.keys.pkcs11 import Pkcs11KeyStore

        s = Settings()
        if not s.pkcs11_module or not s.pkcs11_token:
            raise InvalidRequest("set PNC_PKCS11_MODULE and PNC_PKCS11_TOKEN for --key-scheme pkcs11")
        keys.register(Pkcs11KeyStore(s.pkcs11_module, s.pkcs11_token, s.pkcs11_user_pin()))
    else:
        raise InvalidRequest("--key-scheme must be file or pkcs11")
    return OfflineRoot(directory, keys, key_scheme=scheme)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path | None, data: bytes) -> None:
    if path is None:
        sys.stdout.write(data.decode())
    else:
        path.write_bytes(data)


@ceremony_app.command("create-root")
def create_root(
    directory: DirOpt,
    name: Annotated[str, typer.Option(help="CA name, e.g. v2g-root.")],
    kind: Annotated[CertKind, typer.Option(help="v2g-root, mo-root, oem-root or csms-root.")],
    common_name: Annotated[str, typer.Option("--cn", help="Subject CN.")],
    organization: Annotated[str, typer.Option("--org", help="Subject O.")],
    country: Annotated[str, typer.Option(help="Subject C.")] = "DE",
    generation: Annotated[Generation | None, typer.Option(help="Profile generation (default by kind).")] = None,
    algorithm: Annotated[KeyAlgorithm, typer.Option(help="Root key algorithm.")] = KeyAlgorithm.P256,
    days: Annotated[int | None, typer.Option(help="Validity (default: profile).")] = None,
    domain_component: Annotated[str | None, typer.Option("--dc", help="Subject DC (V2G: V2G).")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Root certificate PEM (default stdout).")] = None,
    key_scheme: SchemeOpt = "file",
) -> None:
    """Create the root key (in --dir/keys or the HSM) and its self-signed certificate."""
    from api.cli.main import handle_errors
    from pki.profiles import default_generation

    @handle_errors
    def run() -> None:
        root = _open(directory, key_scheme)
        try:
            cert = root.create_root(name, kind, generation or default_generation(kind),
                                    subject_name(common_name, organization, country, domain_component),
                                    key_algorithm=algorithm, validity_days=days)
        finally:
            root.close()
        _write(output, _pem(cert))
        err.print(f"root {name!r} created; copy its certificate (only) to the online service")

    run()


@ceremony_app.command("sign-subca")
def sign_subca(
    directory: DirOpt,
    csr: Annotated[Path, typer.Option("--csr", help="Sub-CA CSR from `pnc ca request-subca`.", exists=True,
                                      dir_okay=False)],
    kind: Annotated[CertKind, typer.Option(help="Sub-CA kind, e.g. cpo-sub1.")],
    days: Annotated[int | None, typer.Option(help="Validity (default: profile).")] = None,
    expect_cn: Annotated[str | None, typer.Option(help="Refuse unless the CSR's CN equals this.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Sub-CA certificate PEM (default stdout).")] = None,
    key_scheme: SchemeOpt = "file",
) -> None:
    """Sign a sub-CA CSR with the offline root (profile-driven extensions; only the subject comes from the CSR)."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        root = _open(directory, key_scheme)
        try:
            cert = root.sign_sub_ca(csr.read_bytes(), kind, validity_days=days, expect_common_name=expect_cn)
        finally:
            root.close()
        _write(output, _pem(cert))
        err.print(f"signed {cert.subject.rfc4514_string()} serial {cert.serial_number:x}")

    run()


@ceremony_app.command("revoke")
def revoke(
    directory: DirOpt,
    serial: Annotated[str, typer.Option(help="Hex serial of the sub-CA certificate.")],
    reason: Annotated[str, typer.Option(help="RFC 5280 reason, e.g. keyCompromise, cACompromise, superseded.")]
    = "unspecified",
    key_scheme: SchemeOpt = "file",
) -> None:
    """Revoke a sub-CA certificate signed by this root (then publish a new `crl`)."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        try:
            flag = x509.ReasonFlags(reason)
        except ValueError:
            raise InvalidRequest(f"unknown reason {reason!r}") from None
        root = _open(directory, key_scheme)
        try:
            rec = root.revoke(serial, flag)
        finally:
            root.close()
        err.print(f"revoked {rec.subject} ({rec.serial})")

    run()


@ceremony_app.command("crl")
def crl(
    directory: DirOpt,
    days: Annotated[int, typer.Option(help="nextUpdate in days.")] = 90,
    output: Annotated[Path | None, typer.Option("--out", help="CRL file (default stdout, PEM).")] = None,
    der: Annotated[bool, typer.Option(help="DER instead of PEM.")] = False,
    key_scheme: SchemeOpt = "file",
) -> None:
    """Produce the root CRL (revoked sub-CAs), signed by the offline root."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        root = _open(directory, key_scheme)
        try:
            result = root.crl(next_update_days=days)
        finally:
            root.close()
        data = result.der() if der else result.pem()
        if output is not None:
            output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
        err.print(f"CRL number {result.number} with {len(list(result.crl))} revoked certificate(s)")

    run()


# --- online side: registered on `pnc ca` -------------------------------------------------------------------


def register_ca_commands(ca_app: typer.Typer) -> None:
    from api.cli.main import handle_errors, services

    @ca_app.command("import-root")
    @handle_errors
    def ca_import_root(
        cert: Annotated[Path, typer.Option("--cert", help="Root certificate from the ceremony.", exists=True,
                                           dir_okay=False)],
        name: Annotated[str, typer.Option(help="CA name.")],
        kind: Annotated[CertKind, typer.Option(help="Root kind.")],
        generation: Annotated[Generation | None, typer.Option(help="Profile generation (default by kind and "
                                                             "key: P-521/Ed448 -> iso15118-20).")] = None,
    ) -> None:
        """Trust an offline root (certificate only; the service can never sign with it)."""
        ca = import_root(services().authority, cert.read_bytes(), name, kind, generation=generation)
        err.print(f"imported offline root {ca.name!r} ({ca.generation})")

    @ca_app.command("request-subca")
    @handle_errors
    def ca_request_subca(
        name: Annotated[str, typer.Option(help="New sub-CA name.")],
        kind: Annotated[CertKind, typer.Option(help="Sub-CA kind, e.g. cpo-sub1.")],
        parent: Annotated[str, typer.Option(help="The imported offline root.")],
        common_name: Annotated[str, typer.Option("--cn", help="Subject CN.")],
        organization: Annotated[str, typer.Option("--org", help="Subject O.")],
        country: Annotated[str, typer.Option(help="Subject C.")] = "DE",
        domain_component: Annotated[str | None, typer.Option("--dc", help="Subject DC.")] = None,
        algorithm: Annotated[KeyAlgorithm | None, typer.Option(help="Key algorithm (default: the root's).")] = None,
        output: Annotated[Path | None, typer.Option("--out", help="CSR PEM (default stdout).")] = None,
    ) -> None:
        """Create the sub-CA key in the online key store and write its CSR for the offline root."""
        csr = request_sub_ca(services().authority, name, kind, parent,
                             subject_name(common_name, organization, country, domain_component),
                             key_algorithm=algorithm)
        _write(output, csr.public_bytes(serialization.Encoding.PEM))

    @ca_app.command("import-subca")
    @handle_errors
    def ca_import_subca(
        cert: Annotated[Path, typer.Option("--cert", help="Sub-CA certificate signed by the offline root.",
                                           exists=True, dir_okay=False)],
    ) -> None:
        """Activate the pending sub-CA whose key this certificate certifies."""
        ca = import_sub_ca(services().authority, cert.read_bytes())
        err.print(f"sub-CA {ca.name!r} is active")
