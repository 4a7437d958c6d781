"""Generate the committed EXI grammar tables from the vendored ISO 15118 / xmldsig XSDs.

Run ``python -m pki.iso15118.exi.generate`` after changing a schema under
``pki/iso15118/schemas/``; the output (``_tables_*.py``) is deterministic, and a test regenerates it
in memory and compares, so the committed tables cannot drift from the schemas.
"""

from __future__ import annotations

import pprint
import sys
from pathlib import Path
from typing import Any

from pki.iso15118.exi.grammar import build_tables
from pki.iso15118.exi.xsd import ComplexType, Particle, SchemaSet

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

# name -> root schema document; the tables module is pki/iso15118/exi/_tables_<name>.py
SCHEMA_ROOTS: dict[str, Path] = {
    "iso2": SCHEMAS / "iso15118_2" / "V2G_CI_MsgDef.xsd",
    "iso20": SCHEMAS / "iso15118_20" / "V2G_CI_CommonMessages.xsd",
    "xmldsig": SCHEMAS / "xmldsig-core-schema.xsd",
}


# Where EXIficient's shipped ISO 15118-2 grammar (ISO15118_2Grammar in EXICodec.jar) differs from the
# published XSD, byte-exactness with the reference wins; each override is documented and tested.
# (type qname, child element local name) -> maxOccurs used for the *grammar* (None = unbounded).
# The schema facet itself (e.g. at most 20 root certificate IDs) is still enforced by the models.
MAX_OCCURS_OVERRIDES: dict[str, dict[tuple[tuple[str, str], str], int | None]] = {
    "iso2": {
        # EXIficient accepts and encodes any number of RootCertificateID (the 20th is followed by a
        # 2-bit EE, not the 1-bit EE of a maxOccurs=20 grammar): its grammar treats it as unbounded.
        (("urn:iso:15118:2:2013:MsgDataTypes", "ListOfRootCertificateIDsType"), "RootCertificateID"): None,
    },
}


def _apply_overrides(schema: SchemaSet, name: str) -> None:
    for (type_qn, child), max_occurs in MAX_OCCURS_OVERRIDES.get(name, {}).items():
        t = schema.type_by_name(type_qn)
        assert isinstance(t, ComplexType) and t.particle is not None
        hits = [p for p in _walk(t.particle) if p.element is not None and p.element.qname[1] == child]
        if len(hits) != 1:
            raise RuntimeError(f"override {type_qn}/{child} matches {len(hits)} particles")
        hits[0].max_occurs = max_occurs


def _walk(p: Particle) -> list[Particle]:
    out = [p]
    for c in p.children:
        out += _walk(c)
    return out


def tables_for(name: str) -> dict[str, Any]:
    schema = SchemaSet(SCHEMA_ROOTS[name], ns_locations={XMLDSIG_NS: SCHEMAS / "xmldsig-core-schema.xsd"})
    _apply_overrides(schema, name)
    return build_tables(schema)


def render(name: str) -> str:
    t = tables_for(name)
    lines = [
        f'"""EXI grammar tables for {SCHEMA_ROOTS[name].relative_to(SCHEMAS.parent)}.',
        "",
        "GENERATED, do not edit.",
        "",
        "Regenerate with ``python -m pki.iso15118.exi.generate``.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from typing import Any",
        "",
    ]
    for key in ("qnames", "datatypes", "elements", "doc", "frag", "efg_attrs", "efg_decls", "untyped"):
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
