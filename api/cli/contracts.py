"""`pnc trust` (ISO 15118 trust store) and `pnc contract` (contract registry) commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.main import err, handle_errors, out, services

trust_app = typer.Typer(help="ISO 15118 trust store: V2G, MO and OEM roots and their sub-CAs.", no_args_is_help=True)
contract_app = typer.Typer(help="Plug & Charge contracts (EMAIDs).", no_args_is_help=True)


@trust_app.command("add")
@handle_errors
def trust_add(
    file: Annotated[Path, typer.Argument(help="PEM bundle or DER certificate.", exists=True, dir_okay=False)],
    role: Annotated[str, typer.Option(help="v2g, mo or oem.")],
    label: Annotated[str | None, typer.Option(help="Free-text label, e.g. the OEM's name.")] = None,
) -> None:
    """Trust a root (and/or sub-CAs that validate to a trusted root)."""
    rows = services().contracts.trust.add(file.read_bytes(), role, label=label, actor="cli")
    for r in rows:
        out.print(f"added {r.role} {'root' if r.is_root else 'sub-CA'} {r.subject} (id {r.id}, sha256 "
                  f"{r.fingerprint_sha256[:16]}…)", highlight=False)


@trust_app.command("list")
@handle_errors
def trust_list(role: Annotated[str | None, typer.Option(help="v2g, mo or oem.")] = None) -> None:
    """List trust anchors (our own roots are trusted implicitly and not listed)."""
    table = Table("id", "role", "type", "not after", "sha256", "label")
    table.add_column("subject", overflow="fold")
    for r in services().contracts.trust.list(role):
        table.add_row(str(r.id), r.role, "root" if r.is_root else "sub-CA", r.not_after.strftime("%Y-%m-%d"),
                      r.fingerprint_sha256[:16], r.label or "-", r.subject)
    out.print(table)


@trust_app.command("remove")
@handle_errors
def trust_remove(ident: Annotated[str, typer.Argument(help="Id or SHA-256 fingerprint prefix (>= 8 hex).")]) -> None:
    """Stop trusting a root or sub-CA."""
    row = services().contracts.trust.remove(ident, actor="cli")
    out.print(f"removed {row.role} {row.subject}", highlight=False)


@contract_app.command("create")
@handle_errors
def contract_create(
    owner: Annotated[str, typer.Option(help="eMSP / customer reference.")],
    emaid: Annotated[str | None, typer.Option(help="EMAID (14 or 15 chars); omit to generate.")] = None,
    country: Annotated[str | None, typer.Option(help="Country code for a generated EMAID.")] = None,
    provider: Annotated[str | None, typer.Option(help="Provider ID for a generated EMAID.")] = None,
    pcid: Annotated[str | None, typer.Option(help="Bind to this vehicle (PCID).")] = None,
    days: Annotated[int | None, typer.Option(help="Validity in days (default 730).")] = None,
    generation: Annotated[str, typer.Option(help="iso15118-2 or iso15118-20.")] = "iso15118-2",
) -> None:
    """Create a contract; prints its EMAID."""
    c = services().contracts.registry.create(owner=owner, emaid=emaid, country=country, provider=provider, pcid=pcid,
                                             valid_days=days, generation=generation, actor="cli")
    out.print(c.emaid)
    err.print(f"contract {c.emaid} for {c.owner} valid until {c.valid_to:%Y-%m-%d}", highlight=False)


@contract_app.command("list")
@handle_errors
def contract_list(
    owner: Annotated[str | None, typer.Option(help="Filter by owner.")] = None,
    status: Annotated[str | None, typer.Option(help="active, cancelled or expired.")] = None,
    pcid: Annotated[str | None, typer.Option(help="Filter by vehicle.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
) -> None:
    """List contracts."""
    table = Table()
    table.add_column("emaid", min_width=15, no_wrap=True)
    for name in ("owner", "status", "pcid", "valid to", "certificate"):
        table.add_column(name)
    for c in services().contracts.registry.list(owner=owner, status=status, pcid=pcid, limit=limit):
        table.add_row(c.emaid, c.owner, c.status, c.pcid or "-", c.valid_to.strftime("%Y-%m-%d"),
                      str(c.certificate_id or "-"))
    out.print(table)


@contract_app.command("cancel")
@handle_errors
def contract_cancel(emaid: str, reason: Annotated[str | None, typer.Option(help="Why.")] = None) -> None:
    """Cancel a contract (installations and updates for it are refused from now on)."""
    c = services().contracts.registry.cancel(emaid, reason=reason, actor="cli")
    out.print(f"cancelled {c.emaid}")


@contract_app.command("bind")
@handle_errors
def contract_bind(emaid: str, pcid: str) -> None:
    """Bind a contract to a vehicle's PCID."""
    c = services().contracts.registry.bind(emaid, pcid, actor="cli")
    out.print(f"bound {c.emaid} to {c.pcid}")
