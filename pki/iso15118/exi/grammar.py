"""Derive EXI 1.0 schema-informed grammars (§8.5) from a :class:`~pki.iso15118.exi.xsd.SchemaSet`.

Used by ``generate.py`` only; the runtime loads the emitted tables.  The derivation follows the spec:

* every complex type becomes an automaton: attribute uses sorted by qname (§8.5.4.1.3.1), then the
  content particle (sequence/choice/repetition, substitution groups expanded in qname order,
  wildcards as SE(*)), mixed content adds CH [untyped] self-loops (§8.5.4.1.3.2); simple types are
  ``CH → EE`` (§8.5.4.1.3.1);
* normalisation (§8.5.4.2) = epsilon elimination + merging productions with the same terminal, which
  is exactly a subset construction, so we build an NFA and determinise it;
* event codes (§8.5.4.4.2) order productions AT(qname) by qname, then SE(qname) in schema order,
  then SE(*), EE, CH.  Non-strict mode (what EXIficient's ISO 15118 profile uses) gives every
  element-grammar state second-level productions, so first-level codes are ⌈log2(n+1)⌉ bits wide;
  the runtime computes that from the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pki.iso15118.exi.xsd import ComplexType, ElementDecl, Particle, QName, SchemaSet, SimpleType

# production kinds (shared with the runtime)
AT, SE, SE_ANY, EE, CH, CH_UNTYPED, AT_ANY = 0, 1, 2, 3, 4, 5, 6


def datatype_of(st: SimpleType) -> tuple[Any, ...]:
    """The EXI representation (§7.1) of an atomic simple type, with the facets the codec enforces."""
    b = st.builtin
    if st.enumeration is not None:
        base = (
            "int"
            if b in ("integer", "long", "int", "short", "byte")
            or b.startswith(("unsigned", "non", "pos", "neg"))
            else "str"
        )
        return ("enum", tuple(st.enumeration), base)
    if b == "boolean":
        return ("bool",)
    if b in ("base64Binary", "hexBinary"):
        return (
            "bin",
            st.length if st.length is not None else st.min_length,
            st.length if st.length is not None else st.max_length,
            b == "hexBinary",
        )
    if b in ("decimal",):
        return ("dec",)
    if b in ("float", "double"):
        return ("float",)
    if b == "dateTime":
        return ("datetime",)
    if st.min_inclusive is not None or st.max_inclusive is not None or b == "integer" or "nteger" in b:
        lo, hi = st.min_inclusive, st.max_inclusive
        if lo is not None and hi is not None and hi - lo + 1 <= 4096:
            return ("nbit", lo, hi)
        if lo is not None and lo >= 0:
            return ("uint", lo, hi)
        return ("int", lo, hi)
    # every string-ish built-in
    return (
        "str",
        st.length if st.length is not None else st.min_length,
        st.length if st.length is not None else st.max_length,
    )


@dataclass
class _NFA:
    n: int = 0
    eps: list[list[int]] = field(default_factory=list)
    trans: list[list[tuple[tuple[Any, ...], int]]] = field(default_factory=list)

    def new(self) -> int:
        self.eps.append([])
        self.trans.append([])
        self.n += 1
        return self.n - 1


class GrammarBuilder:
    def __init__(self, schema: SchemaSet) -> None:
        self.schema = schema
        self.qnames: list[QName] = []
        self._qidx: dict[QName, int] = {}
        self.datatypes: list[tuple[Any, ...]] = []
        self._dtidx: dict[tuple[Any, ...], int] = {}
        self.grammars: list[list[list[tuple[int, int, int, int]]]] = []
        self._gidx: dict[int, int] = {}  # id(typedef) -> grammar index
        self._keep: list[object] = []
        self.elements: list[tuple[int, int]] = []  # (qname idx, grammar idx)
        self._eidx: dict[int, int] = {}  # id(ElementDecl) -> element index
        self._order = 0

    # ------------------------------------------------------------- tables
    def qname(self, qn: QName) -> int:
        if qn not in self._qidx:
            self._qidx[qn] = len(self.qnames)
            self.qnames.append(qn)
        return self._qidx[qn]

    def datatype(self, st: SimpleType) -> int:
        dt = datatype_of(st)
        if dt not in self._dtidx:
            self._dtidx[dt] = len(self.datatypes)
            self.datatypes.append(dt)
        return self._dtidx[dt]

    def element(self, decl: ElementDecl) -> int:
        key = id(decl)
        if key not in self._eidx:
            self._eidx[key] = len(self.elements)
            self.elements.append((self.qname(decl.qname), -1))
            g = self.grammar(decl.type)
            self.elements[self._eidx[key]] = (self.qname(decl.qname), g)
        return self._eidx[key]

    def grammar(self, t: SimpleType | ComplexType) -> int:
        key = id(t)
        if key in self._gidx:
            return self._gidx[key]
        self._keep.append(t)
        idx = len(self.grammars)
        self._gidx[key] = idx
        self.grammars.append([])
        saved = self._order  # nested type construction must not disturb the caller's schema order
        self.grammars[idx] = self._build(t)
        self._order = saved
        return idx

    # ------------------------------------------------------------- NFA construction
    def _build(self, t: SimpleType | ComplexType) -> list[list[tuple[int, int, int, int]]]:
        nfa = _NFA()
        start = nfa.new()
        cur = start
        if isinstance(t, SimpleType):
            nxt = nfa.new()
            nfa.trans[cur].append(((CH, 0, self.datatype(t)), nxt))
            return self._determinise(nfa, start, nxt)
        for a in sorted(t.attributes, key=lambda a: (a.qname[1], a.qname[0])):
            nxt = nfa.new()
            nfa.trans[cur].append(((AT, self.qname(a.qname), self.datatype(a.type)), nxt))
            if not a.required:
                nfa.eps[cur].append(nxt)
            cur = nxt
        content_start = nfa.n
        if t.content == "simple":
            assert t.simple is not None
            nxt = nfa.new()
            nfa.trans[cur].append(((CH, 0, self.datatype(t.simple)), nxt))
            end = nxt
        elif t.content == "elements" and t.particle is not None:
            self._order = 0
            s, e = self._particle(nfa, t.particle)
            nfa.eps[cur].append(s)
            end = e
            if t.mixed:
                for st in range(content_start, nfa.n):
                    nfa.trans[st].append(((CH_UNTYPED, 0, 0), st))
                nfa.trans[cur].append(((CH_UNTYPED, 0, 0), s))
        else:
            end = cur
        return self._determinise(nfa, start, end)

    def _particle(self, nfa: _NFA, p: Particle) -> tuple[int, int]:
        """Thompson construction with bounded repetitions unrolled (EXI §8.5.4.1.5)."""
        order0 = self._order
        mn, mx = p.min_occurs, p.max_occurs
        s = nfa.new()
        cur = s
        copies = mn if mx is None else mx
        for i in range(max(copies, 1) if (mx is None or mx > 0) else 0):
            self._order = order0  # every copy of a particle keeps its schema order
            ts, te = self._term(nfa, p)
            nfa.eps[cur].append(ts)
            if i >= mn:
                nfa.eps[cur].append(te)  # optional copy: may be skipped
            cur = te
        if mx is None:
            # one more looping copy: (term)*
            self._order = order0
            ts, te = self._term(nfa, p)
            loop = nfa.new()
            nfa.eps[cur].append(loop)
            nfa.eps[loop].append(ts)
            nfa.eps[te].append(loop)
            cur = loop
        e = nfa.new()
        nfa.eps[cur].append(e)
        return s, e

    def _term(self, nfa: _NFA, p: Particle) -> tuple[int, int]:
        s = nfa.new()
        e = nfa.new()
        if p.kind == "element":
            assert p.element is not None
            members = self.schema.substitution_members(p.element) if p.element.is_global else [p.element]
            members = sorted(members, key=lambda d: (d.qname[1], d.qname[0]))
            is_list = p.max_occurs is None or p.max_occurs > 1
            for d in members:
                self._order += 1
                nfa.trans[s].append(((SE, self.element(d), int(is_list), self._order), e))
        elif p.kind == "any":
            self._order += 1
            nfa.trans[s].append(((SE_ANY, 0, 0, self._order), e))
        elif p.kind == "sequence":
            cur = s
            for c in p.children:
                cs, ce = self._particle(nfa, c)
                nfa.eps[cur].append(cs)
                cur = ce
            nfa.eps[cur].append(e)
        elif p.kind == "choice":
            for c in p.children:
                cs, ce = self._particle(nfa, c)
                nfa.eps[s].append(cs)
                nfa.eps[ce].append(e)
            if not p.children:
                nfa.eps[s].append(e)
        else:
            raise NotImplementedError(f"xs:{p.kind} content models are not supported")
        return s, e

    # ------------------------------------------------------------- determinisation
    @staticmethod
    def _closure(nfa: _NFA, states: frozenset[int]) -> frozenset[int]:
        stack = list(states)
        seen = set(states)
        while stack:
            x = stack.pop()
            for y in nfa.eps[x]:
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        return frozenset(seen)

    def _determinise(self, nfa: _NFA, start: int, final: int) -> list[list[tuple[int, int, int, int]]]:
        init = self._closure(nfa, frozenset([start]))
        index: dict[frozenset[int], int] = {init: 0}
        todo = [init]
        out: list[list[tuple[int, int, int, int]]] = []
        while todo:
            cur = todo.pop(0)
            groups: dict[tuple[int, int], tuple[tuple[Any, ...], set[int]]] = {}
            for x in cur:
                for label, y in nfa.trans[x]:
                    key = (label[0], label[1])
                    if key in groups:
                        groups[key][1].add(y)
                    else:
                        groups[key] = (label, {y})
            prods: list[tuple[tuple[Any, ...], int, int, int, int]] = []
            for (kind, arg), (label, targets) in groups.items():
                tgt = self._closure(nfa, frozenset(targets))
                if tgt not in index:
                    index[tgt] = len(index)
                    todo.append(tgt)
                if kind == AT:
                    sort = (0, self.qnames[arg][1], self.qnames[arg][0], 0)
                    prods.append((sort, AT, arg, label[2], index[tgt]))
                elif kind == SE:
                    prods.append(((3, "", "", label[3]), SE, arg, label[2], index[tgt]))
                elif kind == SE_ANY:
                    prods.append(((5, "", "", label[3]), SE_ANY, 0, 0, index[tgt]))
                elif kind == CH:
                    prods.append(((7, "", "", 0), CH, 0, label[2], index[tgt]))
                else:
                    prods.append(((8, "", "", 0), CH_UNTYPED, 0, 0, index[tgt]))
            if final in cur:
                prods.append(((6, "", "", 0), EE, 0, 0, -1))
            prods.sort(key=lambda p: p[0])
            out.append([(k, a, b, n) for _, k, a, b, n in prods])
        # states were numbered in discovery order == order of `out`
        return out


def build_tables(schema: SchemaSet, efg_elements: set[QName] | None = None) -> dict[str, Any]:
    """Everything the runtime needs for one schema set, as plain literals."""
    gb = GrammarBuilder(schema)
    # global elements for the document grammar (§8.5.1), sorted by local name then uri
    glob = sorted(schema.elements.values(), key=lambda d: (d.qname[1], d.qname[0]))
    doc = [gb.element(d) for d in glob]
    # all element declarations for the fragment grammar (§8.5.2)
    by_qname: dict[QName, list[ElementDecl]] = {}
    for d in schema.all_elements:
        by_qname.setdefault(d.qname, []).append(d)
    frag: list[tuple[int, int]] = []
    efg_decls: dict[int, list[int]] = {}
    for qn in sorted(by_qname, key=lambda q: (q[1], q[0])):
        decls = by_qname[qn]
        types = {id(d.type) if d.type.name is None else d.type.name for d in decls}
        nill = {d.nillable for d in decls}
        if len(types) == 1 and len(nill) == 1:
            frag.append((gb.qname(qn), gb.element(decls[0])))
        else:
            frag.append((gb.qname(qn), -1))  # relaxed element fragment grammar (§8.5.3)
            # remember the declarations: their attribute qnames resolve local names when encoding
            efg_decls[gb.qname(qn)] = [gb.element(d) for d in decls]
    # attributes of the element fragment grammar: every attribute qname in the schema
    attrs: dict[QName, set[tuple[Any, ...]]] = {}
    seen_types: set[int] = set()
    for d in schema.all_elements:
        t = d.type
        if isinstance(t, ComplexType) and id(t) not in seen_types:
            seen_types.add(id(t))
            for a in t.attributes:
                attrs.setdefault(a.qname, set()).add(datatype_of(a.type))
    efg_attrs = []
    for qn in sorted(attrs, key=lambda q: (q[1], q[0])):
        dts = attrs[qn]
        if len(dts) == 1:
            dt = next(iter(dts))
            if dt not in gb._dtidx:
                gb._dtidx[dt] = len(gb.datatypes)
                gb.datatypes.append(dt)
            efg_attrs.append((gb.qname(qn), gb._dtidx[dt]))
        else:
            efg_attrs.append((gb.qname(qn), -1))
    untyped = ("str", None, None)
    if untyped not in gb._dtidx:
        gb._dtidx[untyped] = len(gb.datatypes)
        gb.datatypes.append(untyped)
    return {
        "qnames": gb.qnames,
        "datatypes": gb.datatypes,
        "grammars": gb.grammars,
        "elements": gb.elements,
        "doc": doc,
        "frag": frag,
        "efg_attrs": efg_attrs,
        "efg_decls": efg_decls,
        "untyped": gb._dtidx[untyped],
    }
