"""`pnc root rotate`, `pnc job ...`, `pnc ca renew|retire`, `pnc cert expiring`: lifecycle from the command line.

The CLI drives jobs itself (resume runs the job in this process, with rich progress bars); the service's expiry
watch advances open jobs too, so a rotation started here keeps going after the command exits. Either way the
job's state lives in the database and a second runner is refused while one holds the job's lease.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from api.cli.main import err, handle_errors, out, services
from api.lifecycle import lifecycle_for
from pki.errors import InvalidRequest
from pki.lifecycle.expiry import parse_duration
from pki.lifecycle.gateway import Hierarchy
from pki.lifecycle.jobs import JobEngine, JobReport
from pki.lifecycle.renewal import renew_ca, retire_ca
from pki.lifecycle.rotation import RotationOptions
from pki.profiles import Generation
from pki.store.models import ItemState, JobStatus

root_app = typer.Typer(help="Root CAs: rotation.", no_args_is_help=True)
job_app = typer.Typer(help="Lifecycle jobs: list, show, resume, cancel.", no_args_is_help=True)

ACTOR = "cli"


def _run_with_progress(engine: JobEngine, job_id: int) -> JobReport:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), console=err, transient=False) as progress:
        total = max(1, sum(engine.report(job_id, with_items=False).counts.values()))
        bars = {s: progress.add_task(s, total=total, info="") for s in (ItemState.INSTALLED, ItemState.PENDING,
                                                                           ItemState.FAILED)}

        def on_tick(report: JobReport) -> None:
            n = max(1, sum(report.counts.values()))
            for state, task in bars.items():
                progress.update(task, total=n, completed=report.counts.get(state, 0),
                                info=f"{report.job.phase}" if state == ItemState.INSTALLED else "")

        engine.run(job_id, on_tick=on_tick)
    return engine.report(job_id)


def _print_report(report: JobReport, *, stations: bool = True) -> None:
    d = report.as_dict(with_items=stations)
    out.print(f"job {d['id']} [bold]{d['kind']}[/bold] {d['target']}: {d['status']} (phase {d['phase']})")
    if d["message"]:
        out.print(f"  {d['message']}", highlight=False)
    c = d["counts"]
    out.print(f"  stations: {c['installed']} installed, {c['pending']} pending, {c['failed']} failed")
    if stations and report.items:
        table = Table("station", "state", "step", "attempts", "reason")
        for i in report.items:
            table.add_row(i.station_id, i.state, i.step, str(i.attempts), i.reason or "")
        out.print(table)


def _exit_for(report: JobReport) -> None:
    if report.job.status == JobStatus.FAILED:
        raise typer.Exit(1)


@root_app.command("rotate")
@handle_errors
def root_rotate(
    hierarchy: Annotated[Hierarchy, typer.Option(help="Which root to rotate.")],
    generation: Annotated[str, typer.Option(help="iso15118-2 or iso15118-20 (ignored for csms).")] = "iso15118-2",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    link_certificate: Annotated[bool | None, typer.Option(
        "--link-certificate/--no-link-certificate",
        help="Install the new root signed by the old root key (OCPP M05). Default: on for csms.")] = None,
    batch: Annotated[int, typer.Option(help="Stations started per wave.", min=1)] = 50,
    rate: Annotated[float, typer.Option(help="Gateway calls per second (0 = unlimited).", min=0)] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rotate a root: new root (+ link certificate), new sub-CAs, roll-out to stations, retire the old root."""
    svc = services()
    lc = lifecycle_for(svc)
    try:
        gen = Generation(generation)
    except ValueError:
        raise InvalidRequest("--generation must be iso15118-2 or iso15118-20") from None
    options = RotationOptions(hierarchy, gen, link_certificate, batch, rate)
    if dry_run:
        plan = lc.rotation.plan(options)
        if as_json:
            out.print_json(json.dumps(plan))
            return
        _print_plan(plan)
        return
    job = lc.rotation.start(lc.engine, options, ACTOR)
    assert job.id is not None
    out.print(f"job {job.id} created; resume it any time with `pnc job resume {job.id}`")
    report = _run_with_progress(lc.engine, job.id)
    _print_report(report, stations=False)
    _exit_for(report)


def _print_plan(plan: dict[str, Any]) -> None:
    out.print(f"[bold]plan[/bold]: rotate {plan['old_root']} ({plan['hierarchy']}, {plan['generation']})")
    table = Table("old CA", "new CA")
    for old, new in plan["new_cas"].items():
        table.add_row(old, new)
    out.print(table)
    out.print(f"link certificate (new root signed by old root key, M05): {'yes' if plan['link_certificate'] else 'no'}")
    out.print(f"install as {plan['install_type']}; batch {plan['batch']} stations per wave, {plan['rate']} calls/s")
    if not plan["gateway"]:
        out.print("[yellow]no station gateway configured: the job would create the CAs and wait[/yellow]")
    if plan["stations"]:
        st = Table("station", "connected", "install", "re-issue")
        for s in plan["stations"]:
            st.add_row(s["station"], "yes" if s["connected"] else "no", s["install"], s["reissue"] or "-")
        out.print(st)
    out.print(f"valid end-entity certificates under the old root now: {plan['valid_leaves_under_old_root']} "
              "(the old root is retired only when none remain)")


@job_app.command("list")
@handle_errors
def job_list(status: Annotated[str | None, typer.Option(help="Filter by status.")] = None,
             limit: Annotated[int, typer.Option(help="At most this many.")] = 50) -> None:
    """List jobs, newest first."""
    lc = lifecycle_for(services())
    table = Table("id", "kind", "target", "status", "phase", "installed", "pending", "failed", "updated")
    for r in lc.engine.list_jobs(status, limit):
        d = r.as_dict(with_items=False)
        c = d["counts"]
        table.add_row(str(d["id"]), d["kind"], d["target"], d["status"], d["phase"], str(c["installed"]),
                      str(c["pending"]), str(c["failed"]), d["updated_at"][:19])
    out.print(table)


@job_app.command("show")
@handle_errors
def job_show(job_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a job and its per-station report (installed / pending / failed with reason)."""
    report = lifecycle_for(services()).engine.report(job_id)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        _print_report(report)


@job_app.command("resume")
@handle_errors
def job_resume(job_id: int,
               retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Retry failed stations.")] = False
               ) -> None:
    """Continue a job where it stopped (after a crash, or once stations are back online)."""
    engine = lifecycle_for(services()).engine
    if retry_failed:
        n = engine.retry_failed(job_id)
        out.print(f"{n} failed stations set back to pending")
    report = _run_with_progress(engine, job_id)
    _print_report(report, stations=False)
    _exit_for(report)


@job_app.command("cancel")
@handle_errors
def job_cancel(job_id: int) -> None:
    """Stop a job. CAs it already created stay (retire them with `pnc ca retire` if unwanted)."""
    job = lifecycle_for(services()).engine.cancel(job_id, ACTOR)
    out.print(f"job {job.id} cancelled in phase {job.phase}")


def ca_renew(name: str,
             cascade: Annotated[bool, typer.Option(help="Also renew every sub-CA below it.")] = False,
             validity_days: Annotated[int | None, typer.Option(help="Validity of the new CA.")] = None) -> None:
    """Renew a sub-CA with overlap: a new key and certificate take over issuance; the old CA stays valid."""
    created = renew_ca(services().authority, name, cascade=cascade, validity_days=validity_days, actor=ACTOR)
    for ca in created:
        out.print(f"created {ca.name} ({ca.kind}); new issuance now uses it")
    out.print(f"{name} stays active for its existing certificates; retire it later with `pnc ca retire {name}`")


def ca_retire(name: str, force: Annotated[bool, typer.Option(help="Even if valid leaves remain.")] = False) -> None:
    """Retire a renewed CA once nothing valid under it remains."""
    ca = retire_ca(services().authority, name, force=force, actor=ACTOR)
    out.print(f"{ca.name} retired")


def cert_expiring(
    within: Annotated[str | None, typer.Option(help="Window, e.g. 30d, 12h. Default: per-kind thresholds.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Certificates that expire soon (valid ones only), soonest first."""
    window = parse_duration(within) if within else None
    found = lifecycle_for(services()).watch.expiring(window, kind)
    if as_json:
        out.print_json(json.dumps([e.as_dict() for e in found]))
        return
    table = Table("id", "kind", "subject", "owner", "not after", "days left")
    for e in found:
        d = e.as_dict()
        table.add_row(str(d["id"]), d["kind"], d["subject"], d["owner"] or "", d["not_after"][:19],
                      f"{d['remaining_days']:.1f}")
    out.print(table)


def register(app: typer.Typer, ca_app: typer.Typer, cert_app: typer.Typer) -> None:
    app.add_typer(root_app, name="root")
    app.add_typer(job_app, name="job")
    ca_app.command("renew")(handle_errors(ca_renew))
    ca_app.command("retire")(handle_errors(ca_retire))
    cert_app.command("expiring")(handle_errors(cert_expiring))
