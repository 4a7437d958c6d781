"""`pnc cert revoke` and `pnc crl generate|show`: revocation and CRLs from the command line.

The CLI works on the database and key store directly. After a revocation it signs the certificate's new OCSP
responses into the shared table and regenerates the CRL, so a running server (which polls that table) answers
"revoked" within its poll interval without being told.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from pki.errors import InvalidRequest
from pki.hashdata import serial_to_hex
from pki.revocation import RevocationReason, revoke

crl_app = typer.Typer(help="Certificate revocation lists.", no_args_is_help=True)


def register_revoke(cert_app: typer.Typer) -> None:
    from api.cli.main import err, handle_errors, out, services

    @cert_app.command("revoke")
    @handle_errors
    def cert_revoke(
        serial: Annotated[str | None, typer.Argument(help="Hex serial of the certificate.")] = None,
        file: Annotated[Path | None, typer.Option("--file", help="The certificate (PEM or DER) instead of a serial.",
                                                  exists=True, dir_okay=False)] = None,
        reason: Annotated[str, typer.Option(help="keyCompromise, cACompromise, affiliationChanged, superseded, "
                                                 "cessationOfOperation, certificateHold, or removeFromCRL "
                                                 "(releases a hold).")] = "unspecified",
        ca: Annotated[str | None, typer.Option(help="Issuing CA when the serial is ambiguous.")] = None,
    ) -> None:
        """Revoke a certificate (idempotent, audited); removeFromCRL releases a certificateHold."""
        if (serial is None) == (file is None):
            raise InvalidRequest("give either a SERIAL or --file CERT")
        why = RevocationReason.parse(reason)
        svc = services()
        if file is not None:
            data = file.read_bytes()
            try:
                cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data \
                    else x509.load_der_x509_certificate(data)
            except ValueError:
                raise InvalidRequest(f"{file} is not a PEM or DER certificate") from None
            serial = serial_to_hex(cert.serial_number)
            rec = svc.authority.certificate_by_serial(serial, ca=ca)
            if rec.der is not None and rec.der != cert.public_bytes(serialization.Encoding.DER):
                raise InvalidRequest("that certificate was not issued here (same serial, different certificate)")
        else:
            assert serial is not None
            rec = svc.authority.certificate_by_serial(serial, ca=ca)
        result = revoke(svc.authority, rec, why, actor="cli",
                        listeners=(svc.ocsp.on_revocation, svc.crl.on_revocation))
        state = "changed" if result.changed else "unchanged (already in that state)"
        out.print(f"serial {result.record.serial}: {result.record.status}"
                  f"{' (' + result.record.revocation_reason + ')' if result.record.revocation_reason else ''}"
                  f" — {state}")
        if not result.changed:
            err.print("nothing to do", highlight=False)


@crl_app.command("generate")
def crl_generate(ca: Annotated[str | None, typer.Option(help="One CA (default: every CA with a key).")] = None) -> None:
    """Sign a new CRL (next CRL number) for one CA or all."""
    from api.cli.main import handle_errors, out, services

    @handle_errors
    def run() -> None:
        svc = services()
        targets = [svc.authority.ca(ca)] if ca else [c for c in svc.authority.cas()
                                                     if not c.external_key and c.certificate_id is not None]
        table = Table("ca", "number", "revoked", "next update")
        for target in targets:
            rec = svc.crl.generate(target, actor="cli")
            table.add_row(target.name, str(rec.number), str(rec.revoked_count), rec.next_update.isoformat())
        out.print(table)

    run()


@crl_app.command("show")
def crl_show(
    ca: Annotated[str, typer.Argument(help="CA name.")],
    pem: Annotated[bool, typer.Option(help="Print the CRL as PEM.")] = False,
    output: Annotated[Path | None, typer.Option("--out", help="Write the DER CRL to this file.")] = None,
) -> None:
    """Show the current CRL of a CA (generated first if there is none)."""
    from api.cli.main import handle_errors, out, services

    @handle_errors
    def run() -> None:
        svc = services()
        rec = svc.crl.current(svc.authority.ca(ca))
        if output is not None:
            output.write_bytes(rec.der)
        if pem:
            sys.stdout.write(svc.crl.pem(rec).decode())
            return
        crl = x509.load_der_x509_crl(rec.der)
        table = Table(show_header=False)
        table.add_row("issuer", crl.issuer.rfc4514_string())
        table.add_row("number", str(rec.number))
        table.add_row("this update", crl.last_update_utc.isoformat())
        table.add_row("next update", crl.next_update_utc.isoformat() if crl.next_update_utc else "-")
        table.add_row("revoked", str(len(crl)))
        for entry in crl:
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
            except x509.ExtensionNotFound:
                reason = "unspecified"
            table.add_row(f"  {format(entry.serial_number, 'x')}",
                          f"{entry.revocation_date_utc.isoformat()} {reason}")
        out.print(table)

    run()
