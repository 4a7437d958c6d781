"""Generate the committed EXI grammar tables from the vendored ISO 15118 / xmldsig XSDs.

Run ``python -m pki.iso15118.exi.generate`` (or ``make exi-grammars``) after changing a schema under
``pki/iso15118/schemas/``; the output (``_tables_*.py``) is deterministic, and a test regenerates it
in memory and compares, so the committed tables cannot drift from the schemas.
"""

from __future__ import annotations

import pprint
import sys
from pathlib import Path
from typing import Any

from pki.iso15118.exi.grammar import build_tables
from pki.iso15118.exi.xsd import SchemaSet

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

# name -> root schema document; the tables module is pki/iso15118/exi/_tables_<name>.py
SCHEMA_ROOTS: dict[str, Path] = {
    "iso2": SCHEMAS / "iso15118_2" / "V2G_CI_MsgDef.xsd",
    "iso20": SCHEMAS / "iso15118_20" / "V2G_CI_CommonMessages.xsd",
    "xmldsig": SCHEMAS / "xmldsig-core-schema.xsd",
}


def tables_for(name: str) -> dict[str, Any]:
    schema = SchemaSet(SCHEMA_ROOTS[name], ns_locations={XMLDSIG_NS: SCHEMAS / "xmldsig-core-schema.xsd"})
    return build_tables(schema)


def render(name: str) -> str:
    t = tables_for(name)
    lines = [
        f'"""EXI grammar tables for {SCHEMA_ROOTS[name].relative_to(SCHEMAS.parent)}: GENERATED, do not edit.',
        "",
        "Regenerate with ``python -m pki.iso15118.exi.generate``.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from typing import Any",
        "",
    ]
    for key in ("qnames", "datatypes", "elements", "doc", "frag", "efg_attrs", "untyped"):
        lines.append(f"{key.upper()}: Any = {pprint.pformat(t[key], width=110, compact=True)}")
    lines.append("GRAMMARS: Any = " + pprint.pformat(t["grammars"], width=110, compact=True))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    out_dir = Path(__file__).resolve().parent
    for name in SCHEMA_ROOTS:
        (out_dir / f"_tables_{name}.py").write_text(render(name))
        print(f"wrote {out_dir / f'_tables_{name}.py'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
