"""`pnc station …`: register stations and queue certificate-management calls (delivered by the running server).

Commands write to the database directly (like the rest of `pnc`): a queued call waits in the durable outbox and the
server's dispatcher delivers it when the station is (or comes) online.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.main import err, handle_errors, out, services
from api.ocpp.runtime import COMMANDS, OcppRuntime
from api.rest.stations import resolve_payload
from pki import stations
from pki.errors import InvalidRequest
from pki.store import ocpp_repo

app = typer.Typer(help="Charging stations (OCPP): registry and certificate commands.", no_args_is_help=True)


@app.command("add")
@handle_errors
def add(
    station_id: str,
    serial: Annotated[str, typer.Option(help="Station serial number: CN of its client certificate.")],
    org: Annotated[str, typer.Option(help="Organisation: O of its certificates.")],
    secc: Annotated[list[str] | None, typer.Option(help="SECC/EVSE ID allowed as V2G CN (repeatable).")] = None,
    profile: Annotated[int, typer.Option(help="OCPP security profile 1, 2 or 3.")] = 1,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="Read the Basic-auth password from this file "
                                                            "(default: generate one and print it once).")] = None,
    integration: Annotated[str, typer.Option(help="direct (connects to pnc-pki) or csms (via REST).")] = "direct",
) -> None:
    """Register a station; a generated password is printed once and stored only as a scrypt hash."""
    password = password_file.read_text().strip() if password_file else None
    station, generated = stations.register_station(services().db, stations.StationSpec(
        station_id=station_id, serial_number=serial, organization=org, secc_ids=tuple(secc or ()),
        security_profile=profile, password=password, country=country, integration=integration), actor="cli")
    out.print(f"registered {station.station_id} (profile {station.security_profile})")
    if generated:
        out.print(f"password: {generated}", highlight=False)


@app.command("list")
@handle_errors
def list_(org: Annotated[str | None, typer.Option(help="Only this organisation.")] = None) -> None:
    """List registered stations."""
    table = Table("station", "serial", "organisation", "profile", "version", "last seen")
    for s in ocpp_repo.list_stations(services().db, organization=org, limit=100_000):
        table.add_row(s.station_id, s.serial_number, s.organization, str(s.security_profile), s.ocpp_version or "-",
                      str(s.last_seen_at or "-"))
    out.print(table)


@app.command("show")
@handle_errors
def show(station_id: str) -> None:
    """A station, its reported certificates, recent security events and queued calls."""
    db = services().db
    s = stations.get_station(db, station_id)
    out.print_json(json.dumps({
        "station_id": s.station_id, "serial_number": s.serial_number, "organization": s.organization,
        "secc_ids": list(stations.secc_ids_of(s)), "security_profile": s.security_profile,
        "integration": s.integration, "ocpp_version": s.ocpp_version, "last_seen_at": str(s.last_seen_at),
        "installed_certificates": [{"id": i.id, "type": i.certificate_type, "hashAlgorithm": i.hash_algorithm,
                                    "serialNumber": i.serial_number} for i in ocpp_repo.list_inventory(db, station_id)],
        "security_events": [{"type": e.type, "at": str(e.at)}
                            for e in ocpp_repo.list_events(db, station_id, kind="security", limit=20)],
        "outbox": [{"id": r.id, "action": r.action, "status": r.status, "attempts": r.attempts}
                   for r in ocpp_repo.list_outbox(db, station_id=station_id, limit=50)],
    }))


@app.command("remove")
@handle_errors
def remove(station_id: str) -> None:
    """Remove a station (its pending calls are dropped)."""
    stations.remove_station(services().db, station_id, actor="cli")
    out.print(f"removed {station_id}")


@app.command("command")
@handle_errors
def command(
    action: Annotated[str, typer.Argument(help=f"One of: {', '.join(COMMANDS)}.")],
    station: Annotated[list[str] | None, typer.Option("--station", "-s", help="Station id (repeatable).")] = None,
    org: Annotated[str | None, typer.Option(help="All stations of this organisation.")] = None,
    payload: Annotated[str, typer.Option(help="camelCase JSON payload, e.g. '{\"requestedMessage\": "
                                              "\"SignChargingStationCertificate\"}'.")] = "{}",
    certificate: Annotated[Path | None, typer.Option(help="InstallCertificate: PEM file of the root.")] = None,
    certificate_type: Annotated[str | None, typer.Option(help="InstallCertificate: certificateType.")] = None,
    pnc: Annotated[bool, typer.Option(help="1.6 stations: use the PnC DataTransfer wrapper.")] = False,
) -> None:
    """Queue a certificate-management call for one station or a selection (delivered via the outbox)."""
    svc = services()
    try:
        body: dict[str, Any] = json.loads(payload)
    except ValueError:
        raise InvalidRequest("--payload is not JSON") from None
    if certificate is not None:
        body["certificate"] = certificate.read_text()
    if certificate_type is not None:
        body["certificateType"] = certificate_type
    ids = list(station or [])
    if org:
        ids += [s.station_id for s in ocpp_repo.list_stations(svc.db, organization=org, limit=100_000)]
    if not ids:
        raise InvalidRequest("name stations with --station or --org")
    runtime = OcppRuntime(svc)
    try:
        rows = []
        for sid in dict.fromkeys(ids):
            rows += runtime.enqueue_command([sid], action, resolve_payload(svc, sid, action, body), actor="cli",
                                            pnc=pnc)
    finally:
        runtime.executor.shutdown(wait=False)
    for row in rows:
        out.print(f"queued #{row.id} {row.action} for {row.station_id}")
    if not rows:
        err.print("nothing queued")
