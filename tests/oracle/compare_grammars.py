"""Walk EXIficient's shipped grammars (EXICodec.jar) and ours side by side and report every difference.

    .venv/bin/python tests/oracle/compare_grammars.py [iso2|iso20|xmldsig ...]

Test tooling only (needs the oracle venv, see setup_oracle.sh).  Starting from the document and the
fragment grammar, every reachable state is compared: number of first-level productions, and per
event code the event type, qname and datatype class.  Exit status 1 when anything differs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pki.iso15118.exi import codec
from pki.iso15118.exi.grammar import AT, AT_ANY, CH, CH_UNTYPED, EE, SE, SE_ANY
from tests.pki.iso15118.exi.oracle import Oracle, find_oracle

JAVA = {
    "iso2": "ISO15118_2Grammar",
    "iso20": "ISO15118_20_V2G_CI_CommonMessages",
    "xmldsig": "XMLDSIG_Core_Schema_Grammar",
}
KIND = {
    AT: "ATTRIBUTE",
    SE: "START_ELEMENT",
    SE_ANY: "START_ELEMENT_GENERIC",
    EE: "END_ELEMENT",
    CH: "CHARACTERS",
    CH_UNTYPED: "CHARACTERS_GENERIC",
}
DT = {
    "str": "STRING",
    "bin": "BINARY",
    "bool": "BOOLEAN",
    "nbit": "NBIT_UNSIGNED_INTEGER",
    "uint": "UNSIGNED_INTEGER",
    "int": "INTEGER",
    "enum": "ENUMERATION",
}


class Walker:
    def __init__(self, oracle: Oracle, name: str) -> None:
        self.jvm = oracle.gateway.jvm
        self.g = codec.grammars(name)
        self.java = getattr(self.jvm.com.siemens.ct.exi.main.generatedgrammar, JAVA[name])()
        self.seen: set[tuple[int, int]] = set()
        self.diffs: list[str] = []
        self.states = 0

    def ident(self, obj: Any) -> int:
        return int(self.jvm.System.identityHashCode(obj))

    def dt_name(self, dt: tuple[Any, ...]) -> str:
        return DT.get(dt[0], dt[0].upper())

    def compare(self, jg: Any, states: list[codec._State], idx: int, path: str) -> None:
        """Iterative walk (grammars are deep: -20 unrolls maxOccurs up to 2048)."""
        todo = [(jg, states, idx, path)]
        while todo and len(self.diffs) <= 40:
            jg, states, idx, path = todo.pop()
            key = (self.ident(jg), id(states[idx]))
            if key in self.seen:
                continue
            self.seen.add(key)
            self.states += 1
            self._state(jg, states, idx, path, todo)

    def _state(self, jg: Any, states: list[codec._State], idx: int, path: str, todo: list[Any]) -> None:
        ours = states[idx]
        n = int(jg.getNumberOfEvents())
        if n != len(ours.prods):
            jl = [str(jg.getProduction(i).getEvent()) for i in range(n)]
            ol = [(KIND[p.kind], p.name) for p in ours.prods]
            self.diffs.append(f"{path} state {idx}: EXIficient {n} events {jl} / pnc {len(ours.prods)} {ol}")
            return
        for i, p in enumerate(ours.prods):
            jp = jg.getProduction(i)
            ev = jp.getEvent()
            et = str(ev.getEventType().name())
            want = KIND[p.kind]
            if et != want:
                self.diffs.append(f"{path} state {idx} code {i}: EXIficient {et} {ev} / pnc {want} {p.name}")
                continue
            if p.kind in (AT, SE):
                q = ev.getQName()
                jq = (str(q.getNamespaceURI()), str(q.getLocalPart()))
                if jq != (p.uri, p.name):
                    self.diffs.append(f"{path} state {idx} code {i}: EXIficient {jq} / pnc {(p.uri, p.name)}")
                    continue
            if p.kind in (AT, CH):
                jdt = str(ev.getDatatype().getBuiltInType().name())
                odt = self.dt_name(self.g.datatypes[p.dt])
                if not jdt.startswith(odt):
                    self.diffs.append(f"{path}/{p.name or '#text'}: EXIficient datatype {jdt} / pnc {odt}")
            if p.kind == SE and p.elem >= 0:
                child = self.g.grammars[self.g.elements[p.elem][1]]
                todo.append((ev.getGrammar(), child, 0, f"{path}/{p.name}"))
            if p.kind != EE and p.nxt >= 0:
                todo.append((jp.getNextGrammar(), states, p.nxt, path))

    def compare_efg(self, jg: Any, name: str) -> None:
        """The relaxed element fragment grammar (§8.5.3): start-tag and content state."""
        st0, st1 = self.g.efg()
        for label, js, ours in (("start", jg, st0), ("content", None, st1)):
            if js is None:  # reach the content state through the CH production of the start state
                ch = next(p for p in st0.prods if p.kind == CH_UNTYPED)
                js = jg.getProduction(ch.code).getNextGrammar()
            n = int(js.getNumberOfEvents())
            if n != len(ours.prods):
                self.diffs.append(f"#efg/{name} {label}: EXIficient {n} events / pnc {len(ours.prods)}")
                continue
            for p in ours.prods:
                ev = js.getProduction(p.code).getEvent()
                et = str(ev.getEventType().name())
                want = {
                    AT: "ATTRIBUTE",
                    AT_ANY: "ATTRIBUTE_GENERIC",
                    SE_ANY: "START_ELEMENT_GENERIC",
                    SE: "START_ELEMENT",
                    EE: "END_ELEMENT",
                    CH_UNTYPED: "CHARACTERS_GENERIC",
                }
                if p.kind in want and et != want[p.kind]:
                    self.diffs.append(f"#efg/{name} {label} code {p.code}: EXIficient {et} / pnc {p.kind}")
                elif p.kind in (AT, SE):
                    q = ev.getQName()
                    if (str(q.getNamespaceURI()), str(q.getLocalPart())) != (p.uri, p.name):
                        self.diffs.append(f"#efg/{name} {label} code {p.code}: EXIficient {q} / pnc {p.name}")
            self.states += 1

    def run(self) -> list[str]:
        doc = self.java.getDocumentGrammar().getProduction(0).getNextGrammar()  # Document -> DocContent
        n = int(doc.getNumberOfEvents())
        if n != len(self.g.doc_state.prods) + 1:  # EXIficient lists SE(*) at first level too
            self.diffs.append(
                f"DocContent: EXIficient {n} events / pnc {len(self.g.doc_state.prods)} + SE(*)"
            )
        for i, p in enumerate(self.g.doc_state.prods):
            ev = doc.getProduction(i).getEvent()
            if str(ev.getQName().getLocalPart()) != p.name:
                self.diffs.append(f"DocContent code {i}: EXIficient {ev} / pnc {p.name}")
                continue
            self.compare(ev.getGrammar(), self.g.grammars[self.g.elements[p.elem][1]], 0, p.name)
        frag = self.java.getFragmentGrammar().getProduction(0).getNextGrammar()
        for i, p in enumerate(self.g.frag_state.prods):
            ev = frag.getProduction(i).getEvent()
            if str(ev.getQName().getLocalPart()) != p.name:
                self.diffs.append(f"FragmentContent code {i}: EXIficient {ev} / pnc {p.name}")
            elif p.elem < 0:
                self.compare_efg(ev.getGrammar(), p.name)
            elif p.elem >= 0:
                self.compare(
                    ev.getGrammar(), self.g.grammars[self.g.elements[p.elem][1]], 0, f"#frag/{p.name}"
                )
        return self.diffs


def main(argv: list[str]) -> int:
    found = find_oracle()
    if isinstance(found, str):
        print(found)
        return 2
    o = Oracle(*found)
    bad = 0
    try:
        for name in argv or list(JAVA):
            w = Walker(o, name)
            diffs = w.run()
            print(f"{name}: {w.states} state pairs compared, {len(diffs)} differences")
            for d in diffs:
                print("  ", d)
            bad += len(diffs)
    finally:
        o.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
