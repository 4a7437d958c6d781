"""Schema-informed EXI 1.0 body encoder/decoder driven by the generated grammar tables.

Options are fixed to what EXIficient uses for ISO 15118 (see docs/iso15118-exi.md): bit-packed,
no options document in the header, no cookie, schema-informed *non-strict* grammars, no fidelity
options (no comments/PIs/DTD/prefixes/lexical values), ``valuePartitionCapacity = 0`` and
``valueMaxLength = 0`` (so every string value is a string-table miss), and the EXI-profile limits
of zero built-in element grammars/productions.

Documents are plain trees shaped like Josev/EXIficient JSON: ``{"V2G_Message": {...}}``; an element
of complex type is a ``dict`` keyed by attribute and child *local* names (simple content under
``"value"``), repeatable children are lists, simple-typed elements are scalars (``str``, ``int``,
``bool``, ``bytes`` for base64Binary/hexBinary).

Second-level (undeclared) events are never produced and are rejected when decoding: documents that
need them are not valid against the ISO schema, which is all ISO 15118 allows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pki.iso15118.exi.errors import ExiError
from pki.iso15118.exi.grammar import AT, AT_ANY, CH, CH_UNTYPED, EE, SE, SE_ANY

Tree = dict[str, Any]

# EXI header: distinguishing bits "10", no options, final version 1 ("0 0000") -> one octet 0x80.
_HEADER = 0x80
_MAX_DEPTH = 48  # ISO 15118 documents nest < 15 deep; bounds recursion on hostile input
_MAX_UINT_OCTETS = 40  # 280 bits: larger than any value the schemas allow (X509 serial ≤ 20 octets)


@dataclass(frozen=True, slots=True)
class _Prod:
    code: int
    kind: int
    name: str  # local name (AT/SE)
    uri: str
    dt: int  # datatype index (AT/CH) or -1
    nxt: int  # next state, -1 after EE
    elem: int  # element index (SE) or -1 (-1 also marks the relaxed element fragment grammar)
    is_list: bool


@dataclass(slots=True)
class _State:
    width: int
    prods: tuple[_Prod, ...]
    by_key: dict[tuple[int, str], _Prod]  # (kind, local name) -> production; (EE|CH, "") for EE/CH


class Grammars:
    """Runtime view of one generated table module."""

    def __init__(self, module_name: str) -> None:
        mod = importlib.import_module(f"pki.iso15118.exi._tables_{module_name}")
        self.name = module_name
        self.qnames: list[tuple[str, str]] = [(q[0], q[1]) for q in mod.QNAMES]
        self.datatypes: list[tuple[Any, ...]] = list(mod.DATATYPES)
        self.elements: list[tuple[int, int]] = list(mod.ELEMENTS)
        self.untyped: int = mod.UNTYPED
        self.grammars: list[list[_State]] = []
        for g in mod.GRAMMARS:
            states = []
            for prods in g:
                built = []
                for code, (kind, a, b, nxt) in enumerate(prods):
                    if kind == AT:
                        uri, local = self.qnames[a]
                        built.append(_Prod(code, kind, local, uri, b, nxt, -1, False))
                    elif kind == SE:
                        uri, local = self.qnames[self.elements[a][0]]
                        built.append(_Prod(code, kind, local, uri, -1, nxt, a, bool(b)))
                    else:
                        built.append(
                            _Prod(code, kind, "", "", b if kind == CH else self.untyped, nxt, -1, False)
                        )
                states.append(self._state(built, escape=True))
            self.grammars.append(states)
        self.scalar = [self._is_scalar(g) for g in self.grammars]
        self.doc_state = self._state([self._se_prod(i, e, -1) for i, e in enumerate(mod.DOC)], escape=True)
        frag = [self._se_prod(i, e, q) for i, (q, e) in enumerate(mod.FRAG)]
        # FragmentContent: SE(F_0..F_n-1), SE(*), ED -> n+2 codes (EXI 1.0 §8.5.2)
        self.frag_state = _State((len(frag) + 1).bit_length(), tuple(frag), {(SE, p.name): p for p in frag})
        self.frag_ed_code = len(frag) + 1
        self._frag_prods = frag
        self.efg_attrs = [(self.qnames[q], dt) for q, dt in mod.EFG_ATTRS]
        # element local name -> {attribute local name -> attribute uri} from its declarations' types
        self.efg_attr_uris: dict[str, dict[str, str]] = {}
        for q, decls in mod.EFG_DECLS.items():
            uris: dict[str, str] = {}
            for e in decls:
                for p in self.grammars[self.elements[e][1]][0].prods:
                    if p.kind == AT:
                        uris.setdefault(p.name, p.uri)
            self.efg_attr_uris[self.qnames[q][1]] = uris
        self._efg: tuple[_State, _State] | None = None
        self.global_by_name = {p.name: p for p in self.doc_state.prods}

    def _se_prod(self, code: int, elem: int, qname_idx: int) -> _Prod:
        if elem >= 0:
            uri, local = self.qnames[self.elements[elem][0]]
        else:
            uri, local = self.qnames[qname_idx]
        return _Prod(code, SE, local, uri, -1, 0, elem, False)

    @staticmethod
    def _state(prods: list[_Prod], escape: bool) -> _State:
        n = len(prods) + (1 if escape else 0)
        by_key: dict[tuple[int, str], _Prod] = {}
        for p in prods:
            key = (p.kind, p.name) if p.kind in (AT, SE) else (p.kind, "")
            by_key.setdefault(key, p)
        return _State((n - 1).bit_length(), tuple(prods), by_key)

    @staticmethod
    def _is_scalar(states: list[_State]) -> bool:
        return (
            len(states) == 2
            and len(states[0].prods) == 1
            and states[0].prods[0].kind == CH
            and [p.kind for p in states[1].prods] == [EE]
        )

    def efg(self) -> tuple[_State, _State]:
        """The relaxed element fragment grammar (EXI 1.0 §8.5.3): start-tag and content states."""
        if self._efg is None:
            ats = [
                _Prod(i, AT, local, uri, dt if dt >= 0 else self.untyped, 0, -1, False)
                for i, ((uri, local), dt) in enumerate(self.efg_attrs)
            ]
            m = len(ats)
            ses = [_Prod(0, SE, p.name, p.uri, -1, 1, p.elem, False) for p in self._frag_prods]
            start = list(ats)
            start.append(_Prod(m, AT_ANY, "", "", -1, 0, -1, False))  # AT(*): never produced
            start += [_Prod(m + 1 + i, SE, p.name, p.uri, -1, 1, p.elem, False) for i, p in enumerate(ses)]
            n = len(start)
            start.append(_Prod(n, SE_ANY, "", "", -1, 1, -1, False))
            start.append(_Prod(n + 1, EE, "", "", -1, -1, -1, False))
            start.append(_Prod(n + 2, CH_UNTYPED, "", "", self.untyped, 1, -1, False))
            content = [_Prod(i, SE, p.name, p.uri, -1, 1, p.elem, False) for i, p in enumerate(ses)]
            k = len(content)
            content.append(_Prod(k, SE_ANY, "", "", -1, 1, -1, False))
            content.append(_Prod(k + 1, EE, "", "", -1, -1, -1, False))
            content.append(_Prod(k + 2, CH_UNTYPED, "", "", self.untyped, 1, -1, False))
            self._efg = (self._state(start, escape=True), self._state(content, escape=True))
        return self._efg


_GRAMMARS: dict[str, Grammars] = {}


def grammars(name: str) -> Grammars:
    g = _GRAMMARS.get(name)
    if g is None:
        g = _GRAMMARS[name] = Grammars(name)
    return g


# ---------------------------------------------------------------------------------------------- writer
class _Writer:
    __slots__ = ("acc", "nbits")

    def __init__(self) -> None:
        self.acc = 0
        self.nbits = 0

    def bits(self, value: int, n: int) -> None:
        if n:
            self.acc = (self.acc << n) | value
            self.nbits += n

    def uint(self, value: int) -> None:
        if value < 0x80:
            self.acc = (self.acc << 8) | value
            self.nbits += 8
            return
        while True:
            low = value & 0x7F
            value >>= 7
            if value:
                self.bits(0x80 | low, 8)
            else:
                self.bits(low, 8)
                return

    def raw(self, data: bytes) -> None:
        if data:
            n = len(data) * 8
            self.acc = (self.acc << n) | int.from_bytes(data, "big")
            self.nbits += n

    def finish(self) -> bytes:
        pad = (-self.nbits) % 8
        return (self.acc << pad).to_bytes((self.nbits + pad) // 8, "big")


class _Reader:
    __slots__ = ("data", "limit", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.limit = len(data) * 8

    def bits(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self.pos
        end = pos + n
        if end > self.limit:
            raise ExiError(f"truncated stream: need {n} bits, {self.limit - pos} left", pos)
        first = pos >> 3
        last = (end + 7) >> 3
        chunk = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (chunk >> ((last << 3) - end)) & ((1 << n) - 1)

    def uint(self) -> int:
        start = self.pos
        value = 0
        shift = 0
        for _ in range(_MAX_UINT_OCTETS):
            octet = self.bits(8)
            value |= (octet & 0x7F) << shift
            if not octet & 0x80:
                return value
            shift += 7
        raise ExiError("unsigned integer longer than the codec's bound", start)

    def raw(self, n: int) -> bytes:
        if n * 8 > self.limit - self.pos:
            raise ExiError(f"truncated stream: binary of {n} octets exceeds the remaining data", self.pos)
        return self.bits(n * 8).to_bytes(n, "big") if n else b""


# ---------------------------------------------------------------------------------------------- values
def _check_len(n: int, lo: int | None, hi: int | None, what: str, pos: int, path: str) -> None:
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ExiError(f"{what} length {n} outside the schema facets [{lo}, {hi}]", pos, path)


def _write_value(w: _Writer, dt: tuple[Any, ...], value: Any, path: str) -> None:
    kind = dt[0]
    if kind == "str":
        if not isinstance(value, str):
            raise ExiError(f"expected a string, got {type(value).__name__}", w.nbits, path)
        cps = [ord(c) for c in value]
        _check_len(len(cps), dt[1], dt[2], "string", w.nbits, path)
        w.uint(len(cps) + 2)  # string-table miss (no value partitions): length + 2
        for c in cps:
            w.uint(c)
    elif kind == "bin":
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if not isinstance(value, bytes):
            raise ExiError(f"expected bytes, got {type(value).__name__}", w.nbits, path)
        _check_len(len(value), dt[1], dt[2], "binary", w.nbits, path)
        w.uint(len(value))
        w.raw(value)
    elif kind == "enum":
        values = dt[1]
        key = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            idx = values.index(key)
        except ValueError:
            raise ExiError(f"{value!r} is not one of the enumerated values", w.nbits, path) from None
        w.bits(idx, (len(values) - 1).bit_length())
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ExiError(f"expected a boolean, got {type(value).__name__}", w.nbits, path)
        w.bits(int(value), 1)
    elif kind in ("nbit", "uint", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExiError(f"expected an integer, got {type(value).__name__}", w.nbits, path)
        lo, hi = dt[1], dt[2]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ExiError(f"integer {value} outside [{lo}, {hi}]", w.nbits, path)
        if kind == "nbit":
            w.bits(value - lo, (hi - lo).bit_length())
        elif kind == "uint":
            w.uint(value)
        elif value < 0:
            w.bits(1, 1)
            w.uint(-value - 1)
        else:
            w.bits(0, 1)
            w.uint(value)
    else:
        raise ExiError(f"datatype {kind} is not supported by this codec", w.nbits, path)


def _read_value(r: _Reader, dt: tuple[Any, ...], path: str) -> Any:
    kind = dt[0]
    pos = r.pos
    if kind == "str":
        n = r.uint()
        if n < 2:
            raise ExiError("string-table hit, but the ISO 15118 profile has no value string table", pos, path)
        n -= 2
        if n * 8 > r.limit - r.pos:
            raise ExiError(
                f"truncated stream: string of {n} characters exceeds the remaining data", pos, path
            )
        _check_len(n, dt[1], dt[2], "string", pos, path)
        chars = []
        for _ in range(n):
            c = r.uint()
            if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF:
                raise ExiError(f"invalid code point {c}", r.pos, path)
            chars.append(chr(c))
        return "".join(chars)
    if kind == "bin":
        n = r.uint()
        _check_len(n, dt[1], dt[2], "binary", pos, path)
        return r.raw(n)
    if kind == "enum":
        values = dt[1]
        idx = r.bits((len(values) - 1).bit_length())
        if idx >= len(values):
            raise ExiError(f"enumeration index {idx} out of range", pos, path)
        v = values[idx]
        return int(v) if dt[2] == "int" else v
    if kind == "bool":
        return bool(r.bits(1))
    if kind == "nbit":
        lo, hi = dt[1], dt[2]
        v = r.bits((hi - lo).bit_length()) + lo
        if v > hi:
            raise ExiError(f"integer {v} above the facet maximum {hi}", pos, path)
        return v
    if kind in ("uint", "int"):
        if kind == "int" and r.bits(1):
            v = -r.uint() - 1
        else:
            v = r.uint()
        lo, hi = dt[1], dt[2]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ExiError(f"integer {v} outside [{lo}, {hi}]", pos, path)
        return v
    raise ExiError(f"datatype {kind} is not supported by this codec", pos, path)


# ---------------------------------------------------------------------------------------------- encoder
class _Encoder:
    def __init__(self, g: Grammars) -> None:
        self.g = g
        self.w = _Writer()

    def element(self, elem: int, value: Any, path: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ExiError("document nested too deeply", self.w.nbits, path)
        if elem < 0:
            self.fragment_element(value, path, depth)
            return
        g = self.g
        gi = g.elements[elem][1]
        states = g.grammars[gi]
        w = self.w
        if g.scalar[gi]:
            st = states[0]
            p = st.prods[0]
            w.bits(p.code, st.width)
            _write_value(w, g.datatypes[p.dt], value, path)
            st = states[1]
            w.bits(st.prods[0].code, st.width)
            return
        if not isinstance(value, dict):
            raise ExiError(
                f"expected an object for a complex element, got {type(value).__name__}", w.nbits, path
            )
        used: dict[str, int] = {}
        state = states[0]
        while True:
            chosen: _Prod | None = None
            for p in state.prods:
                k = p.kind
                if k == AT or k == SE:
                    v = value.get(p.name)
                    if v is None:
                        continue
                    if k == AT:
                        if p.name in used:
                            continue
                    elif p.is_list and isinstance(v, list):
                        if used.get(p.name, 0) >= len(v):
                            continue
                    elif p.name in used:
                        continue
                    chosen = p
                    break
                if k == CH or k == CH_UNTYPED:
                    if "value" in value and "value" not in used and value["value"] is not None:
                        chosen = p
                        break
                    continue
                if k == EE:
                    chosen = p
                    break
            if chosen is None:
                raise ExiError("content does not match the schema (no applicable production)", w.nbits, path)
            w.bits(chosen.code, state.width)
            k = chosen.kind
            if k == EE:
                leftover = [key for key, v in value.items() if v is not None and key not in used]
                leftover += [
                    key
                    for key, v in value.items()
                    if isinstance(v, list) and key in used and used[key] < len(v)
                ]
                if leftover:
                    raise ExiError(f"unexpected or misplaced content: {sorted(set(leftover))}", w.nbits, path)
                return
            if k == AT:
                used[chosen.name] = 1
                _write_value(w, g.datatypes[chosen.dt], value[chosen.name], f"{path}/@{chosen.name}")
            elif k == SE:
                v = value[chosen.name]
                if chosen.is_list and isinstance(v, list):
                    i = used.get(chosen.name, 0)
                    used[chosen.name] = i + 1
                    v = v[i]
                else:
                    used[chosen.name] = 1
                self.element(chosen.elem, v, f"{path}/{chosen.name}", depth + 1)
            else:
                used["value"] = 1
                _write_value(w, g.datatypes[chosen.dt], value["value"], path)
            state = states[chosen.nxt]

    def fragment_element(self, value: Any, path: str, depth: int) -> None:
        """Relaxed element fragment grammar: attributes, then untyped character data, then EE."""
        st0, st1 = self.g.efg()
        w = self.w
        if not isinstance(value, dict):
            value = {"value": value}
        state = st0
        uris = self.g.efg_attr_uris.get(path.rsplit("/", 1)[-1], {})
        written: set[str] = set()
        for code, ((uri, local), dt) in enumerate(self.g.efg_attrs):
            # the attribute's namespace comes from the element's declarations; unknown: first match
            if value.get(local) is not None and local not in written and uris.get(local, uri) == uri:
                written.add(local)
                w.bits(code, st0.width)
                _write_value(w, self.g.datatypes[dt if dt >= 0 else self.g.untyped], value[local], path)
        known = {local for (_, local), _ in self.g.efg_attrs}
        extra = [k for k in value if k not in known and k != "value"]
        if extra:
            raise ExiError(f"element-fragment content {extra} is not supported", w.nbits, path)
        if value.get("value") is not None:
            p = state.by_key[(CH_UNTYPED, "")]
            w.bits(p.code, state.width)
            v = value["value"]
            _write_value(w, self.g.datatypes[self.g.untyped], v if isinstance(v, str) else str(v), path)
            state = st1
        p = state.by_key[(EE, "")]
        w.bits(p.code, state.width)


# ---------------------------------------------------------------------------------------------- decoder
class _Decoder:
    def __init__(self, g: Grammars, data: bytes) -> None:
        self.g = g
        self.r = _Reader(data)

    def code(self, state: _State, path: str) -> _Prod:
        pos = self.r.pos
        c = self.r.bits(state.width)
        if c >= len(state.prods):
            raise ExiError(
                "second-level (undeclared) event or invalid event code: not valid for the ISO 15118 schema",
                pos,
                path,
            )
        return state.prods[c]

    def element(self, elem: int, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ExiError("document nested too deeply", self.r.pos, path)
        if elem < 0:
            return self.fragment_element(path)
        g = self.g
        gi = g.elements[elem][1]
        states = g.grammars[gi]
        if g.scalar[gi]:
            p = self.code(states[0], path)
            v = _read_value(self.r, g.datatypes[p.dt], path)
            self.code(states[1], path)
            return v
        out: dict[str, Any] = {}
        state = states[0]
        while True:
            p = self.code(state, path)
            k = p.kind
            if k == EE:
                return out
            if k == AT:
                out[p.name] = _read_value(self.r, g.datatypes[p.dt], f"{path}/@{p.name}")
            elif k == SE:
                v = self.element(p.elem, f"{path}/{p.name}", depth + 1)
                if p.is_list:
                    out.setdefault(p.name, []).append(v)
                else:
                    out[p.name] = v
            elif k == CH or k == CH_UNTYPED:
                v = _read_value(self.r, g.datatypes[p.dt], path)
                if k == CH_UNTYPED and "value" in out:
                    out["value"] += v
                else:
                    out["value"] = v
            else:
                raise ExiError("wildcard element content is not supported", self.r.pos, path)
            state = states[p.nxt]

    def fragment_element(self, path: str) -> Any:
        st0, st1 = self.g.efg()
        out: dict[str, Any] = {}
        state = st0
        while True:
            p = self.code(state, path)
            if p.kind == EE:
                return out
            if p.kind == AT and state is st0:
                out[p.name] = _read_value(self.r, self.g.datatypes[p.dt], path)
            elif p.kind == CH_UNTYPED:
                out["value"] = out.get("value", "") + _read_value(self.r, self.g.datatypes[p.dt], path)
                state = st1
            else:
                raise ExiError(
                    "nested content in an element-fragment element is not supported", self.r.pos, path
                )


# ---------------------------------------------------------------------------------------------- entry points
def encode_document(g: Grammars, root: Tree) -> bytes:
    """Header + SD + SE(root) ... + ED with the schema-informed document grammar (§8.5.1)."""
    if not isinstance(root, dict) or len(root) != 1:
        raise ExiError("a document needs exactly one root element")
    ((name, value),) = root.items()
    p = g.doc_state.by_key.get((SE, name))
    if p is None:
        raise ExiError(f"{name!r} is not a global element of the {g.name} schema")
    enc = _Encoder(g)
    enc.w.bits(_HEADER, 8)
    enc.w.bits(p.code, g.doc_state.width)
    enc.element(p.elem, value, name, 0)
    # DocEnd: ED is the only production (no comments/PIs preserved) -> 0 bits
    return enc.w.finish()


def decode_document(g: Grammars, data: bytes) -> Tree:
    dec = _Decoder(g, bytes(data))
    _header(dec.r)
    p = dec.code(g.doc_state, "")
    return {p.name: dec.element(p.elem, p.name, 0)}


def encode_fragment(g: Grammars, roots: list[tuple[str, Any]]) -> bytes:
    """Header + SD + one or more SE(F_i) + ED with the schema-informed fragment grammar (§8.5.2)."""
    enc = _Encoder(g)
    enc.w.bits(_HEADER, 8)
    for name, value in roots:
        p = g.frag_state.by_key.get((SE, name))
        if p is None:
            raise ExiError(f"{name!r} is not an element of the {g.name} schema")
        enc.w.bits(p.code, g.frag_state.width)
        enc.element(p.elem, value, name, 0)
    enc.w.bits(g.frag_ed_code, g.frag_state.width)
    return enc.w.finish()


def decode_fragment(g: Grammars, data: bytes, max_roots: int = 64) -> list[tuple[str, Any]]:
    dec = _Decoder(g, bytes(data))
    _header(dec.r)
    out: list[tuple[str, Any]] = []
    while True:
        pos = dec.r.pos
        c = dec.r.bits(g.frag_state.width)
        if c == g.frag_ed_code:
            return out
        if c >= len(g.frag_state.prods):
            raise ExiError("SE(*) or invalid event code in fragment content", pos)
        if len(out) >= max_roots:
            raise ExiError("too many fragment roots", pos)
        p = g.frag_state.prods[c]
        out.append((p.name, dec.element(p.elem, p.name, 0)))


def _header(r: _Reader) -> None:
    if r.limit < 8:
        raise ExiError("truncated stream: no EXI header", 0)
    if r.data[:4] == b"$EXI":
        raise ExiError("EXI cookie present: ISO 15118 streams carry none", 0)
    h = r.bits(8)
    if h >> 6 != 0b10:
        raise ExiError("not an EXI stream (distinguishing bits are not 10)", 0)
    if h & 0x20:
        raise ExiError("EXI options in the header are not supported (ISO 15118 uses none)", 2)
    if h & 0x1F:
        raise ExiError("unsupported EXI format version", 3)
