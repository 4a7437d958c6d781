"""`pnc cert issue-batch`: a directory of CSRs in, one chain file per issued certificate out (factory provisioning).

Resumable the simple way: a CSR whose output file exists is skipped, and files are written (atomically) after each
chunk has committed, so a rerun after an interruption issues only what has no file yet. A certificate committed in
the very chunk that was interrupted is in the database (valid, audited) but has no file; the rerun issues that CSR
again, which is harmless (two certificates for one key) and visible in `pnc cert list --owner`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli.main import err, handle_errors, services
from pki.batch_issuance import CHUNK, BatchIssued, BatchRequest, issue_batch
from pki.errors import InvalidRequest
from pki.profiles import CertKind, Generation

CSR_SUFFIXES = (".csr", ".pem", ".der", ".req")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def register(cert_app: typer.Typer) -> None:
    @cert_app.command("issue-batch")
    @handle_errors
    def issue_batch_command(
        csr_dir: Annotated[Path, typer.Option("--csr-dir", help="Directory of PEM/DER CSRs (*.csr, *.pem, *.der, "
                                                                "*.req); the file stem names the output.",
                                              exists=True, file_okay=False)],
        out_dir: Annotated[Path, typer.Option("--out", help="Directory for <stem>.pem (leaf + chain, no root).")],
        kind: Annotated[CertKind, typer.Option("--kind", help="Certificate kind for every CSR.")],
        generation: Annotated[Generation | None, typer.Option(help="Profile generation (default by kind).")] = None,
        issuer: Annotated[str | None, typer.Option(help="Issuing CA name (default: active issuer).")] = None,
        days: Annotated[int | None, typer.Option(help="Validity in days (default: profile).")] = None,
        expect_o: Annotated[str | None, typer.Option(help="Refuse CSRs whose O is not this.")] = None,
        owner_from_stem: Annotated[bool, typer.Option(help="Record the file stem as each certificate's owner "
                                                           "(e.g. the station id).")] = True,
        chunk: Annotated[int, typer.Option(min=1, max=1000, help="CSRs per transaction.")] = CHUNK,
    ) -> None:
        """Issue a certificate for every CSR in a directory that has no output yet (policy-checked, recorded,
        audited); each CSR not issued is listed with its reason, and any leaves exit code 1 (rerun to retry)."""
        from pki.csr_policy import SubjectExpectation

        files = sorted(p for p in csr_dir.iterdir() if p.is_file() and p.suffix.lower() in CSR_SUFFIXES)
        if not files:
            raise InvalidRequest(f"no CSR files ({', '.join(CSR_SUFFIXES)}) in {csr_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        todo = [p for p in files if not (out_dir / f"{p.stem}.pem").exists()]
        stems = [p.stem for p in files]
        if len(set(stems)) != len(stems):
            raise InvalidRequest("two CSR files share a stem (e.g. a.csr and a.pem); their outputs would collide")
        svc = services()
        expect = SubjectExpectation(organization=expect_o) if expect_o else None
        issued = not_issued = 0
        problems: list[str] = []
        with Progress(TextColumn("[bold]issuing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task("issue", total=len(todo))
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                requests = [BatchRequest(p.read_bytes(), owner=p.stem if owner_from_stem else None, expect=expect)
                            for p in part]
                result = issue_batch(svc.authority, requests, kind, generation=generation, issuer=issuer,
                                     validity_days=days, actor="cli", chunk=chunk)
                chain = result.chain_pem()
                for path, outcome in zip(part, result.items, strict=True):
                    if isinstance(outcome, BatchIssued):
                        _write_atomically(out_dir / f"{path.stem}.pem", outcome.pem() + chain)
                        issued += 1
                    else:
                        not_issued += 1
                        problems.append(f"{path.name}: {outcome.code}: {outcome.message}")
                progress.advance(task, len(part))
        for line in problems:
            err.print(f"[red]not issued:[/red] {line}", highlight=False, markup=True)
        skipped = len(files) - len(todo)
        err.print(f"issued {issued}, not issued {not_issued}, skipped {skipped} (output exists) -> {out_dir}",
                  highlight=False)
        if not_issued:
            raise typer.Exit(1)
