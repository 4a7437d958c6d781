"""`pnc audit`: verify the tamper-evident audit log, export it as JSON lines, sign a checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from rich.console import Console

from api.context import build_services
from api.settings import Settings
from pki.audit import verify_export
from pki.errors import InvalidRequest

audit_app = typer.Typer(help="Tamper-evident audit log.", no_args_is_help=True)
err = Console(stderr=True)


def _keys(paths: list[Path] | None) -> list[PublicKeyTypes]:
    keys: list[PublicKeyTypes] = []
    for p in paths or []:
        try:
            keys.append(serialization.load_pem_public_key(p.read_bytes()))
        except ValueError:
            raise InvalidRequest(f"{p} is not a PEM public key") from None
    return keys


def _report(result_dict: dict[str, object], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result_dict, indent=2) + "\n")
        return
    problems = result_dict["problems"]
    assert isinstance(problems, list)
    for p in problems:
        seq = p["sequence"]
        err.print(f"[red]{p['kind']}[/red] at entry {seq if seq is not None else '-'}: {p['message']}",
                  highlight=False)
    status = "OK" if result_dict["ok"] else "TAMPERED"
    sys.stdout.write(f"{status}: {result_dict['entries']} entries, last sequence {result_dict['last_sequence']}, "
                     f"{result_dict['checkpoints_verified']} signed checkpoint(s) verified\n")


@audit_app.command("verify")
def verify(
    file: Annotated[Path | None, typer.Option("--file", help="Verify an export instead of the database.",
                                              exists=True, dir_okay=False)] = None,
    public_key: Annotated[list[Path] | None, typer.Option("--public-key", help="Trusted audit public key (PEM); "
                                                          "repeatable. Default: the configured audit key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result.")] = False,
) -> None:
    """Check the hash chain and signed checkpoints; exit 6 when anything was edited, deleted or reordered."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> bool:
        trusted = _keys(public_key)
        if file is not None:
            if not trusted:
                svc = build_services(Settings())
                trusted = [svc.audit_log().public_key()]
            with file.open(encoding="utf-8") as fh:
                result = verify_export(fh, trusted)
        else:
            svc = build_services(Settings())
            result = svc.audit_log().verify(trusted or None)
        _report(result.as_dict(), as_json)
        return result.ok

    if not run():
        raise typer.Exit(6)


@audit_app.command("export")
def export(output: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None) -> None:
    """Write every entry (chain order), the signed checkpoints and the head as JSON lines."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        svc = build_services(Settings())
        if output is None:
            n = svc.audit_log().export(sys.stdout)
        else:
            with output.open("w", encoding="utf-8") as fh:
                n = svc.audit_log().export(fh)
        err.print(f"exported {n} entries")

    run()


@audit_app.command("checkpoint")
def checkpoint() -> None:
    """Sign the current chain head with the audit key now (the service also does this periodically)."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        cp = build_services(Settings()).audit_log().checkpoint(actor="cli", force=True)
        if cp is None:
            err.print("the log is empty: nothing to sign")
        else:
            sys.stdout.write(f"checkpoint at entry {cp.sequence} {cp.entry_hash}\n")

    run()


@audit_app.command("public-key")
def public_key() -> None:
    """Print the audit public key (PEM) to pin outside this machine for `pnc audit verify --public-key`."""
    from api.cli.main import handle_errors

    @handle_errors
    def run() -> None:
        log = build_services(Settings()).audit_log()
        key = log.signer(create=True, actor="cli").public_key()
        sys.stdout.write(key.public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode())

    run()
