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
from pki.iso15118.exi.xsd import ComplexType, Particle, SchemaSet, SimpleType

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

# name -> root schema document; the tables module is pki/iso15118/exi/_tables_<name>.py
SCHEMA_ROOTS: dict[str, Path] = {
    "iso2": SCHEMAS / "iso15118_2" / "V2G_CI_MsgDef.xsd",
    "iso20": SCHEMAS / "iso15118_20" / "V2G_CI_CommonMessages.xsd",
    "xmldsig": SCHEMAS / "xmldsig-core-schema.xsd",
}


# Where EXIficient's shipped ISO 15118 grammars (ISO15118_2Grammar, ISO15118_20_V2G_CI_CommonMessages in
# EXICodec.jar) differ from the published XSDs, byte-exactness with the reference wins (issue 4); each
# deviation is documented in docs/iso15118-exi.md and verified by tests/oracle/compare_grammars.py.
#
# Observed (tests/oracle/compare_grammars.py): EXIficient's shipped grammars treat large bounded
# repetitions as maxOccurs="unbounded" -- after the last allowed occurrence they still offer SE + EE
# (a 2-bit EE instead of 1 bit) and accept more -- while small ones are unrolled exactly:
#   -2:  maxOccurs 16, 20, 24, 255, 1024 unbounded (SelectedService, Parameter, RootCertificateID,
#        ProfileEntry, ParameterSet, SalesTariffEntry, PMaxScheduleEntry); 2..8 exact.
#   -20: maxOccurs 1024, 2048 unbounded (schedule/price/power-profile entry lists); 2..128 exact
#        (e.g. the 20th -20 RootCertificateID is followed by a 1-bit EE).
# No single threshold explains both (most likely the -2 grammar was generated from an earlier schema
# draft), so the limits are per schema set.  Widening applies to the *grammar* only; the schema
# facets (e.g. at most 20 root certificate IDs) are still enforced by the models.
UNBOUNDED_ABOVE: dict[str, int] = {"iso2": 8, "iso20": 128}

# Binary types whose XSD ``length`` the ISO 15118-20 requirement text reads as a *maximum*: the schema writes
# ``<xs:length value="133"/>`` for dhPublicKeyType, but [V2G20-2495] says a 448-bit ephemeral public key is sent
# as its 56 bytes "without any extra filler/padding bytes to reach DHPublicKey size of 133 bytes"; likewise
# [V2G20-2521] for TPM_EncryptedPrivateKey ("shall not add any padding ... to the maximum size of 206 bytes").
# Josev models DHPublicKey as ``max_length=133`` too. EXI's binary encoding is length-prefixed and does not
# depend on these facets, so only the codec's facet check changes: (min, max) octets. The models check the
# exact size per ECDHCurve (56 for X448, 133 for SECP521).
LENGTH_AS_MAXIMUM: dict[str, dict[str, tuple[int | None, int]]] = {
    "iso20": {"dhPublicKeyType": (56, 133), "tpm_EncryptedPrivateKeyType": (None, 206)},
}


def _apply_overrides(schema: SchemaSet, name: str) -> None:
    errata = LENGTH_AS_MAXIMUM.get(name, {})
    fixed: set[int] = set()
    for t in schema.all_types():
        if isinstance(t, SimpleType) and t.name is not None and t.name[1] in errata and id(t) not in fixed:
            fixed.add(id(t))
            declared = t.length
            assert declared == errata[t.name[1]][1], f"{t.name[1]}: the schema no longer says length {declared}"
            t.length = None
            t.min_length, t.max_length = errata[t.name[1]]
    missing = set(errata) - {t.name[1] for t in schema.all_types() if id(t) in fixed and t.name is not None}
    assert not missing, f"types not found in the {name} schema: {missing}"
    limit = UNBOUNDED_ABOVE.get(name)
    if limit is None:
        return
    seen: set[int] = set()
    for t in schema.all_types():
        if isinstance(t, ComplexType) and t.particle is not None:
            for p in _walk(t.particle):
                if id(p) not in seen and p.max_occurs is not None and p.max_occurs > limit:
                    seen.add(id(p))
                    p.max_occurs = None


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
