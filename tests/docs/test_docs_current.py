"""Generated documentation must match the code (run `make docs` after changing CLI commands or profiles)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pki.profiles.table import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_profiles_table_is_current() -> None:
    text = (ROOT / "docs/profiles.md").read_text()
    match = re.search(r"<!-- profiles-table:begin -->\n(.*)<!-- profiles-table:end -->", text, flags=re.S)
    assert match, "docs/profiles.md lost its table markers"
    assert match.group(1) == markdown_table(), "docs/profiles.md is stale: run `make docs`"


def test_cli_reference_is_current(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    typer_bin = Path(sys.executable).parent / "typer"
    subprocess.run([str(typer_bin), "api.cli.main", "utils", "docs", "--name", "pnc", "--output", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    assert out.read_text() == (ROOT / "docs/cli.md").read_text(), "docs/cli.md is stale: run `make docs`"
