"""`pnc`: security-admin command line over the same services as the REST API.

Commands work directly on the configured database and key store (like step-ca's offline mode), so a CA can be
administered without the server running. Every error is one line on stderr and a non-zero exit code:
1 = refused/invalid input, 2 = usage, 3 = not found, 4 = conflict, 5 = internal/key-store failure.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.context import ROLES, Services, bootstrap, build_services, create_token
from api.settings import Settings
from pki.errors import Conflict, KeyStoreError, NotFound, PkiError
from pki.identifiers import decimal_id
from pki.profiles import CertKind, Generation
from pki.store import repo

app = typer.Typer(help="pnc-pki: Plug & Charge PKI administration.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
ca_app = typer.Typer(help="Certificate authorities.", no_args_is_help=True)
cert_app = typer.Typer(help="Certificates: issue, list, show, export.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.add_typer(cert_app, name="cert")
app.add_typer(token_app, name="token")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, also when it is longer than the terminal
F = TypeVar("F", bound=Callable[..., Any])


def _exit_code(exc: PkiError) -> int:
    if isinstance(exc, NotFound):
        return 3
    if isinstance(exc, Conflict):
        return 4
    if isinstance(exc, KeyStoreError):
        return 5
    return 1


def handle_errors(fn: F) -> F:
    """Map domain errors to one clear line and an exit code; never a traceback for expected failures."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PkiError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False, markup=True)
            raise typer.Exit(_exit_code(exc)) from None
        except (OSError, RuntimeError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def services(migrate: bool = True) -> Services:
    return build_services(Settings(), migrate=migrate)


# --- init and serve ---------------------------------------------------------------------------------------


@app.command()
@handle_errors
def init(
    dev: Annotated[bool, typer.Option("--dev", help="Also write a complete development PKI to certs-dev/.")] = False,
    organization: Annotated[str | None, typer.Option("--org", help="O of the CA subjects.")] = None,
    country: Annotated[str | None, typer.Option(help="C of the CA subjects (ISO 3166 alpha-2).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where --dev writes the PKI.")] = Path("certs-dev"),
    iso15118_20: Annotated[bool | None, typer.Option(help="Also create the ISO 15118-20 (P-521) hierarchies "
                                                      "(default: PNC_WITH_ISO15118_20, on).")] = None,
) -> None:
    """Create the configured CA hierarchies (resumable: existing CAs are kept)."""
    from pki.hierarchy import create_hierarchies, default_plans

    settings = Settings()
    if organization:
        settings.organization = organization
    if country:
        settings.country = country
    if iso15118_20 is not None:
        settings.with_iso15118_20 = iso15118_20
    svc = build_services(settings)
    plans = default_plans(with_iso15118_20=settings.with_iso15118_20)
    total = sum(len(p.specs) for p in plans)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("creating CAs", total=total)

        class _Advance:
            def advance(self) -> None:
                progress.advance(task)

        created = create_hierarchies(svc.authority, plans, organization=settings.organization,
                                     country=settings.country, actor="cli", progress=_Advance())
    settings_dev = settings.dev_mode
    settings.dev_mode = False  # hierarchies done; only the token part of bootstrap remains
    bootstrap(svc)
    settings.dev_mode = settings_dev
    if settings.dev_mode and repo.count_tokens(svc.db) == 0:
        from api.context import write_secret_file

        write_secret_file(settings.resolved_admin_token_file(), create_token(svc, "dev-admin", "admin"))
    out.print(f"created {len(created)} CA(s); {len(svc.authority.cas())} in total")
    if dev:
        from api.cli.devpki import write_dev_pki

        files = write_dev_pki(svc, out_dir)
        out.print(f"development PKI written to {out_dir}/ ({len(files)} files) — FOR TESTING ONLY")


@app.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default PNC_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PNC_PORT or 8080).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes sharing the database (default PNC_WORKERS or 1); use the machine's cores.")] = None,
) -> None:
    """Serve the REST API (OpenAPI at /docs), CA downloads, OCPP and OCSP."""
    import uvicorn

    from api.app import create_app

    settings = Settings()
    n = workers if workers is not None else settings.workers
    if n < 1:
        raise typer.BadParameter("--workers must be at least 1")
    from api.observability import configure_logging
    from api.ocpp.settings import OcppSettings
    from api.ocpp.ws_protocol import uvicorn_ws_options
    from pki.profiles import all_profiles
    from pki.profiles.validity import parse_validity_policy

    # configuration errors: one line, before binding
    parse_validity_policy(settings.validity_days, all_profiles())
    ws_options = uvicorn_ws_options(OcppSettings().ws_compression)
    log_config = configure_logging(settings.log_format, settings.log_level)
    common: dict[str, Any] = {"host": host or settings.host, "port": port or settings.port,
                              "log_config": log_config, "ws_max_size": 65536, **ws_options}
    if n == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Several processes: do the first-start duties (migrations, development PKI, admin token) once here, so the
    # workers do not race to create them; each worker then builds its own services from the same environment.
    svc = build_services(settings)
    try:
        bootstrap(svc)
    finally:
        svc.close()
    uvicorn.run("api.app:create_app", factory=True, workers=n, **common)


# --- CAs --------------------------------------------------------------------------------------------------


@ca_app.command("list")
@handle_errors
def ca_list() -> None:
    """List CAs as a table."""
    svc = services()
    table = Table("name", "kind", "generation", "parent", "status", "key", "not after")
    for ca in svc.authority.cas():
        parent = svc.authority.ca_by_id(ca.parent_id).name if ca.parent_id else "-"
        rec = repo.get_certificate(svc.db, ca.certificate_id) if ca.certificate_id else None
        table.add_row(ca.name, ca.kind, ca.generation, parent, ca.status, ca.key_algorithm,
                      rec.not_after.strftime("%Y-%m-%d") if rec else "-")
    out.print(table)


@ca_app.command("show")
@handle_errors
def ca_show(name: str, pem: Annotated[bool, typer.Option(help="Print the certificate as PEM.")] = False) -> None:
    """Show one CA (its certificate details, or PEM with --pem)."""
    svc = services()
    ca = svc.authority.ca(name)
    cert = svc.authority.ca_certificate(ca)
    if pem:
        sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
        return
    _print_cert(cert, extra={"name": ca.name, "kind": ca.kind, "generation": ca.generation, "status": ca.status,
                             "key": f"{ca.key_algorithm} ({ca.key_uri.split(':', 1)[0]})"})


def _print_cert(cert: x509.Certificate, extra: dict[str, str] | None = None) -> None:
    table = Table(show_header=False)
    for k, v in (extra or {}).items():
        table.add_row(k, v)
    table.add_row("subject", cert.subject.rfc4514_string())
    table.add_row("issuer", cert.issuer.rfc4514_string())
    table.add_row("serial", format(cert.serial_number, "x"))
    table.add_row("not before", cert.not_valid_before_utc.isoformat())
    table.add_row("not after", cert.not_valid_after_utc.isoformat())
    table.add_row("size", f"{len(cert.public_bytes(serialization.Encoding.DER))} bytes DER")
    for ext in cert.extensions:
        name = getattr(ext.oid, "_name", ext.oid.dotted_string)
        table.add_row(f"ext {name}", ("critical " if ext.critical else "") + _short(ext.value))
    out.print(table)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 160 else text[:157] + "..."


# --- certificates -----------------------------------------------------------------------------------------


@cert_app.command("issue")
@handle_errors
def cert_issue(
    csr: Annotated[Path, typer.Option("--csr", help="PEM or DER PKCS#10 file.", exists=True, dir_okay=False)],
    kind: Annotated[CertKind, typer.Option("--kind", help="Certificate kind.")],
    generation: Annotated[Generation | None, typer.Option(help="Profile generation (default by kind).")] = None,
    issuer: Annotated[str | None, typer.Option(help="Issuing CA name (default: active issuer).")] = None,
    days: Annotated[int | None, typer.Option(help="Validity in days (default: profile).")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner label (station id, EMAID).")] = None,
    expect_cn: Annotated[str | None, typer.Option(help="Refuse unless CN equals this.")] = None,
    expect_o: Annotated[str | None, typer.Option(help="Refuse unless O equals this.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the chain PEM here (default stdout).")] = None,
) -> None:
    """Issue a certificate from a CSR (policy-checked, recorded, audited)."""
    from pki.csr_policy import SubjectExpectation

    svc = services()
    issued = svc.authority.issue_from_csr(
        csr.read_bytes(), kind, generation=generation, issuer=issuer, validity_days=days, owner=owner,
        expect=SubjectExpectation(common_name=expect_cn, organization=expect_o), actor="cli",
    )
    if output:
        output.write_text(issued.chain_pem())
        err.print(f"issued serial {issued.serial} (id {issued.record.id}) -> {output}")
    else:
        sys.stdout.write(issued.chain_pem())


@cert_app.command("list")
@handle_errors
def cert_list(
    kind: Annotated[str | None, typer.Option(help="Filter by kind.")] = None,
    status: Annotated[str | None, typer.Option(help="valid or revoked.")] = None,
    owner: Annotated[str | None, typer.Option(help="Filter by owner.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
) -> None:
    """List issued certificates."""
    svc = services()
    table = Table("id", "serial", "issuer", "kind", "status", "subject", "not after")
    names: dict[int, str] = {}
    for rec in repo.list_certificates(svc.db, kind=kind, status=status, owner=owner, limit=limit):
        if rec.ca_id not in names:
            names[rec.ca_id] = svc.authority.ca_by_id(rec.ca_id).name
        table.add_row(str(rec.id), rec.serial, names[rec.ca_id], rec.kind, rec.status, rec.subject,
                      rec.not_after.strftime("%Y-%m-%d"))
    out.print(table)


def _find(svc: Services, ident: str, ca: str | None) -> Any:
    record_id = decimal_id(ident, max_digits=11)
    if record_id is not None and not ca:
        return svc.authority.certificate(record_id)
    return svc.authority.certificate_by_serial(ident, ca=ca)


@cert_app.command("show")
@handle_errors
def cert_show(ident: Annotated[str, typer.Argument(help="Record id or hex serial.")],
              ca: Annotated[str | None, typer.Option(help="Issuing CA when the serial is ambiguous.")] = None) -> None:
    """Show one certificate."""
    svc = services()
    rec = _find(svc, ident, ca)
    assert rec.der is not None
    _print_cert(x509.load_der_x509_certificate(rec.der),
                extra={"id": str(rec.id), "kind": rec.kind, "status": rec.status, "owner": rec.owner or "-"})


@cert_app.command("export")
@handle_errors
def cert_export(
    ident: Annotated[str, typer.Argument(help="Record id or hex serial.")],
    fmt: Annotated[str, typer.Option("--format", help="pem or der.")] = "pem",
    chain: Annotated[bool, typer.Option(help="Append Sub-CA certificates (PEM only).")] = False,
    ca: Annotated[str | None, typer.Option(help="Issuing CA when the serial is ambiguous.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
) -> None:
    """Export a certificate (PEM or DER, optionally with its chain)."""
    svc = services()
    rec = _find(svc, ident, ca)
    assert rec.der is not None
    if fmt not in ("pem", "der"):
        raise PkiError("--format must be pem or der")
    if fmt == "der":
        if chain:
            raise PkiError("--chain needs --format pem")
        data = rec.der
    else:
        certs = [x509.load_der_x509_certificate(rec.der)]
        if chain:
            certs += list(svc.authority.chain(svc.authority.ca_by_id(rec.ca_id)))
        data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if output:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)


# --- tokens -----------------------------------------------------------------------------------------------


@token_app.command("create")
@handle_errors
def token_create(
    name: str,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    scopes: Annotated[list[str] | None, typer.Option("--scope", help="Limit to an API area (e.g. certificates) "
                                                     "or 'read'; repeatable.")] = None,
    days: Annotated[int, typer.Option(help="Expires after this many days (0: never; not recommended).")] = 90,
) -> None:
    """Create an API token; it is shown once and stored only as a hash."""
    import datetime as dt

    svc = services()
    sys.stdout.write(create_token(svc, name, role, scopes=scopes, actor="cli",
                                  expires_in=dt.timedelta(days=days) if days > 0 else None) + "\n")


@token_app.command("list")
@handle_errors
def token_list() -> None:
    """List tokens (names, roles, scopes, expiry; never values)."""
    svc = services()
    table = Table("name", "role", "scopes", "created", "expires", "revoked")
    for t in repo.list_tokens(svc.db):
        table.add_row(t.name, t.role, t.scopes or "-", t.created_at.strftime("%Y-%m-%d"),
                      t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never",
                      t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "-")
    out.print(table)


@token_app.command("revoke")
@handle_errors
def token_revoke(name: str) -> None:
    """Revoke a token at once (audited)."""
    from api.context import revoke_token

    revoke_token(services(), name, actor="cli")
    err.print(f"token {name!r} revoked")


@token_app.command("bind-cert")
@handle_errors
def token_bind_cert(
    name: str,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    cert: Annotated[Path, typer.Option("--cert", help="PEM client certificate.", exists=True, dir_okay=False)],
    scopes: Annotated[list[str] | None, typer.Option("--scope", help="API area or 'read'; repeatable.")] = None,
) -> None:
    """Let an API client authenticate with this TLS client certificate (mTLS) instead of a token."""
    from api.context import bind_client_certificate

    row = bind_client_certificate(services(), name, role, cert.read_bytes(), scopes=scopes, actor="cli")
    err.print(f"client {name!r} bound to certificate {row.fingerprint_sha256}")


from api.cli.ceremony import ceremony_app, register_ca_commands  # noqa: E402
from api.cli.security import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")
app.add_typer(ceremony_app, name="ceremony")
register_ca_commands(ca_app)


from api.cli.revocation import crl_app, register_revoke  # noqa: E402 - needs the groups above

register_revoke(cert_app)
app.add_typer(crl_app, name="crl")

from api.cli import lifecycle as _lifecycle  # noqa: E402 - registers root/job/renew/expiring on the apps above

_lifecycle.register(app, ca_app, cert_app)


from api.cli.contracts import contract_app, trust_app  # noqa: E402 - needs handle_errors defined above

app.add_typer(trust_app, name="trust")
app.add_typer(contract_app, name="contract")


def main() -> None:
    if shutil.get_terminal_size().columns < 100:
        out.width = 160
    app()


from api.cli import batch as _batch  # noqa: E402
from api.cli.station import app as station_app  # noqa: E402  (late: it uses this module's helpers)

_batch.register(cert_app)

app.add_typer(station_app, name="station")

if __name__ == "__main__":
    main()
