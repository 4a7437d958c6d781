"""A deliberately small XML Schema reader, just enough to derive EXI grammars.

Why not ``xmlschema``: the grammar tables are generated once (``generate.py``) and committed, so the
runtime needs no XSD library at all; for the generator a stdlib-only reader keeps the derivation
auditable and free of a third-party model we would have to map onto EXI anyway.  It supports the XSD
constructs the ISO 15118-2/-20 and xmldsig schemas use (import/include, named and anonymous types,
sequence/choice/all, element refs, substitution groups, wildcards, complex/simple content
extension and restriction, atomic simple-type restriction with facets) and refuses the rest loudly
(list/union/pattern/attribute groups), so a schema change cannot silently produce wrong grammars.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

XS = "http://www.w3.org/2001/XMLSchema"
QName = tuple[str, str]  # (namespace uri, local name)


def _x(tag: str) -> str:
    return f"{{{XS}}}{tag}"


@dataclass
class SimpleType:
    """An atomic simple type: a built-in base plus the merged facets along the derivation chain."""

    name: QName | None
    builtin: str  # local name of the XSD built-in primitive/derived type at the root of the chain
    enumeration: list[str] | None = None
    min_inclusive: int | None = None
    max_inclusive: int | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclass
class AttrUse:
    qname: QName
    type: SimpleType
    required: bool


@dataclass
class Particle:
    """kind: 'element' | 'any' | 'sequence' | 'choice' | 'all'; max_occurs None = unbounded."""

    kind: str
    min_occurs: int = 1
    max_occurs: int | None = 1
    children: list[Particle] = field(default_factory=list)
    element: ElementDecl | None = None
    namespace: str = "##any"


@dataclass
class ComplexType:
    name: QName | None
    attributes: list[AttrUse] = field(default_factory=list)
    content: str = "empty"  # 'empty' | 'simple' | 'elements'
    particle: Particle | None = None
    simple: SimpleType | None = None
    mixed: bool = False
    abstract: bool = False


TypeDef = SimpleType | ComplexType


@dataclass(eq=False)
class ElementDecl:
    qname: QName
    type: TypeDef
    is_global: bool
    abstract: bool = False
    nillable: bool = False
    substitution_head: QName | None = None


# Built-in types this reader maps; anything else raises.
_BUILTIN_RANGES: dict[str, tuple[int | None, int | None]] = {
    "integer": (None, None),
    "long": (-(2**63), 2**63 - 1),
    "int": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None),
    "nonPositiveInteger": (None, 0),
    "negativeInteger": (None, -1),
    "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedByte": (0, 255),
}
_BUILTIN_STRINGS = {
    "string",
    "normalizedString",
    "token",
    "ID",
    "IDREF",
    "NCName",
    "Name",
    "anyURI",
    "NMTOKEN",
}
_BUILTIN_OTHER = {"boolean", "base64Binary", "hexBinary", "decimal", "float", "double", "dateTime"}


def builtin_simple(local: str) -> SimpleType:
    if local in _BUILTIN_RANGES:
        lo, hi = _BUILTIN_RANGES[local]
        return SimpleType(name=(XS, local), builtin=local, min_inclusive=lo, max_inclusive=hi)
    if local in _BUILTIN_STRINGS or local in _BUILTIN_OTHER:
        return SimpleType(name=(XS, local), builtin=local)
    raise NotImplementedError(f"XSD built-in type xs:{local} is not supported by the EXI grammar generator")


@dataclass
class _Doc:
    root: ET.Element
    tns: str
    prefixes: dict[str, str]
    element_qualified: bool
    attribute_qualified: bool


class SchemaSet:
    """All components reachable from one root schema document (imports followed)."""

    def __init__(self, root_file: Path, ns_locations: dict[str, Path] | None = None) -> None:
        self._ns_locations = ns_locations or {}
        self._docs: list[_Doc] = []
        self._loaded: set[Path] = set()
        self._raw_types: dict[QName, tuple[_Doc, ET.Element]] = {}
        self._raw_elements: dict[QName, tuple[_Doc, ET.Element]] = {}
        self._types: dict[QName, TypeDef] = {}
        self.elements: dict[QName, ElementDecl] = {}
        self.all_elements: list[ElementDecl] = []  # global and local, in discovery order
        self._load(root_file.resolve())
        for qn in list(self._raw_elements):
            self._global_element(qn)
        for tqn in list(self._raw_types):  # build unreferenced named types too: their local elements
            self.type_by_name(tqn)  # belong to the schema's element set (fragment grammar)

    # ------------------------------------------------------------------ loading
    def _load(self, path: Path) -> None:
        if path in self._loaded:
            return
        self._loaded.add(path)
        prefixes: dict[str, str] = {}
        # S314: the generator only reads the vendored, trusted ISO/W3C schema files.
        for event, item in ET.iterparse(path, events=("start-ns",)):  # noqa: S314
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(prefix, uri)
        root = ET.parse(path).getroot()  # noqa: S314
        doc = _Doc(
            root=root,
            tns=root.get("targetNamespace", ""),
            prefixes=prefixes,
            element_qualified=root.get("elementFormDefault") == "qualified",
            attribute_qualified=root.get("attributeFormDefault") == "qualified",
        )
        self._docs.append(doc)
        for child in root:
            if child.tag in (_x("import"), _x("include")):
                loc = child.get("schemaLocation")
                ns = child.get("namespace", "")
                target = (path.parent / loc).resolve() if loc else None
                if (target is None or not target.exists()) and ns in self._ns_locations:
                    target = self._ns_locations[ns].resolve()
                if target is None or not target.exists():
                    raise FileNotFoundError(f"cannot resolve schema import {ns} at {loc}")
                self._load(target)
            elif child.tag in (_x("complexType"), _x("simpleType")):
                self._raw_types[(doc.tns, child.attrib["name"])] = (doc, child)
            elif child.tag == _x("element"):
                self._raw_elements[(doc.tns, child.attrib["name"])] = (doc, child)
            elif child.tag in (_x("annotation"),):
                continue
            elif child.tag in (_x("attribute"), _x("attributeGroup"), _x("group")):
                raise NotImplementedError(f"top-level {child.tag} in {path} is not supported")

    @staticmethod
    def _resolve(doc: _Doc, value: str) -> QName:
        if ":" in value:
            prefix, local = value.split(":", 1)
            return (doc.prefixes[prefix], local)
        return (doc.prefixes.get("", ""), value)

    # ------------------------------------------------------------------ types
    def type_by_name(self, qn: QName) -> TypeDef:
        if qn in self._types:
            return self._types[qn]
        if qn[0] == XS:
            if qn[1] == "anyType":
                t: TypeDef = ComplexType(
                    name=qn, content="elements", mixed=True, particle=Particle("any", 0, None)
                )
            else:
                t = builtin_simple(qn[1])
            self._types[qn] = t
            return t
        doc, el = self._raw_types[qn]
        if el.tag == _x("simpleType"):
            st = self._simple_type(doc, el, qn)
            self._types[qn] = st
            return st
        ct = ComplexType(name=qn)
        self._types[qn] = ct  # registered before filling: allows recursive types
        self._fill_complex(doc, el, ct)
        return ct

    def _simple_type(self, doc: _Doc, el: ET.Element, name: QName | None) -> SimpleType:
        restr = el.find(_x("restriction"))
        if restr is None:
            raise NotImplementedError(f"simpleType {name}: only restriction is supported (no list/union)")
        if "base" in restr.attrib:
            base = self.type_by_name(self._resolve(doc, restr.attrib["base"]))
        else:
            inner = restr.find(_x("simpleType"))
            assert inner is not None
            base = self._simple_type(doc, inner, None)
        if not isinstance(base, SimpleType):
            raise NotImplementedError(f"simpleType {name} restricts a complex type")
        return self._apply_facets(base, restr, name)

    @staticmethod
    def _apply_facets(base: SimpleType, restr: ET.Element, name: QName | None) -> SimpleType:
        st = SimpleType(
            name=name,
            builtin=base.builtin,
            enumeration=base.enumeration,
            min_inclusive=base.min_inclusive,
            max_inclusive=base.max_inclusive,
            length=base.length,
            min_length=base.min_length,
            max_length=base.max_length,
        )
        enum: list[str] = []
        for f in restr:
            tag = f.tag.split("}")[1]
            v = f.get("value", "")
            if tag == "enumeration":
                enum.append(v)
            elif tag == "minInclusive":
                st.min_inclusive = int(v) if st.min_inclusive is None else max(st.min_inclusive, int(v))
            elif tag == "maxInclusive":
                st.max_inclusive = int(v) if st.max_inclusive is None else min(st.max_inclusive, int(v))
            elif tag == "minExclusive":
                st.min_inclusive = int(v) + 1
            elif tag == "maxExclusive":
                st.max_inclusive = int(v) - 1
            elif tag == "length":
                st.length = int(v)
            elif tag == "minLength":
                st.min_length = int(v)
            elif tag == "maxLength":
                st.max_length = int(v)
            elif tag in ("annotation", "simpleType", "attribute", "sequence", "choice"):
                continue
            elif tag in ("totalDigits", "fractionDigits", "whiteSpace"):
                continue  # no effect on the EXI representation
            else:
                raise NotImplementedError(
                    f"facet {tag} in {name} is not supported (pattern → restricted charset)"
                )
        if enum:
            st.enumeration = enum
        return st

    def _fill_complex(self, doc: _Doc, el: ET.Element, ct: ComplexType) -> None:
        ct.mixed = el.get("mixed") == "true"
        ct.abstract = el.get("abstract") == "true"
        cc = el.find(_x("complexContent"))
        sc = el.find(_x("simpleContent"))
        if sc is not None:
            der = sc[0] if sc[0].tag != _x("annotation") else sc[1]
            base = self.type_by_name(self._resolve(doc, der.attrib["base"]))
            if isinstance(base, SimpleType):
                simple = base
                attrs: list[AttrUse] = []
            else:
                assert base.simple is not None
                simple = base.simple
                attrs = list(base.attributes)
            if der.tag == _x("restriction"):
                simple = self._apply_facets(simple, der, None)
            ct.content = "simple"
            ct.simple = simple
            ct.attributes = self._merge_attrs(attrs, self._attributes(doc, der))
            return
        if cc is not None:
            if cc.get("mixed") == "true":
                ct.mixed = True
            der = cc[0] if cc[0].tag != _x("annotation") else cc[1]
            base = self.type_by_name(self._resolve(doc, der.attrib["base"]))
            assert isinstance(base, ComplexType)
            own = self._content_particle(doc, der)
            if der.tag == _x("extension"):
                ct.attributes = self._merge_attrs(list(base.attributes), self._attributes(doc, der))
                parts = [p for p in (base.particle, own) if p is not None]
                if not parts:
                    ct.content = "empty"
                elif len(parts) == 1:
                    ct.content, ct.particle = "elements", parts[0]
                else:
                    ct.content, ct.particle = "elements", Particle("sequence", children=parts)
                ct.mixed = ct.mixed or base.mixed
            else:  # restriction: the restricted content model replaces the base one
                ct.attributes = self._merge_attrs(list(base.attributes), self._attributes(doc, der))
                ct.content = "elements" if own is not None else "empty"
                ct.particle = own
            return
        own = self._content_particle(doc, el)
        ct.attributes = self._attributes(doc, el)
        ct.content = "elements" if own is not None else "empty"
        ct.particle = own

    @staticmethod
    def _merge_attrs(base: list[AttrUse], own: list[AttrUse]) -> list[AttrUse]:
        merged = {a.qname: a for a in base}
        for a in own:
            merged[a.qname] = a
        return list(merged.values())

    def _attributes(self, doc: _Doc, el: ET.Element) -> list[AttrUse]:
        out: list[AttrUse] = []
        for a in el:
            if a.tag == _x("attribute"):
                if "ref" in a.attrib:
                    raise NotImplementedError("attribute refs are not supported")
                if a.get("use") == "prohibited":
                    continue
                form = a.get("form")
                qualified = form == "qualified" if form else doc.attribute_qualified
                qn = (doc.tns if qualified else "", a.attrib["name"])
                if "type" in a.attrib:
                    t = self.type_by_name(self._resolve(doc, a.attrib["type"]))
                else:
                    inner = a.find(_x("simpleType"))
                    t = self._simple_type(doc, inner, None) if inner is not None else builtin_simple("string")
                assert isinstance(t, SimpleType)
                out.append(AttrUse(qn, t, a.get("use") == "required"))
            elif a.tag in (_x("attributeGroup"), _x("anyAttribute")):
                raise NotImplementedError(f"{a.tag} is not supported")
        return out

    def _content_particle(self, doc: _Doc, el: ET.Element) -> Particle | None:
        for c in el:
            if c.tag in (_x("sequence"), _x("choice"), _x("all")):
                return self._particle(doc, c)
            if c.tag == _x("group"):
                raise NotImplementedError("model groups by reference are not supported")
        return None

    @staticmethod
    def _occurs(el: ET.Element) -> tuple[int, int | None]:
        mx = el.get("maxOccurs", "1")
        return int(el.get("minOccurs", "1")), (None if mx == "unbounded" else int(mx))

    def _particle(self, doc: _Doc, el: ET.Element) -> Particle:
        mn, mx = self._occurs(el)
        tag = el.tag.split("}")[1]
        if tag in ("sequence", "choice", "all"):
            kids = [self._particle(doc, c) for c in el if c.tag != _x("annotation")]
            return Particle(tag, mn, mx, children=kids)
        if tag == "element":
            return Particle("element", mn, mx, element=self._local_or_ref(doc, el))
        if tag == "any":
            return Particle("any", mn, mx, namespace=el.get("namespace", "##any"))
        raise NotImplementedError(f"particle {tag} is not supported")

    # ------------------------------------------------------------------ elements
    def _element_type(self, doc: _Doc, el: ET.Element) -> TypeDef:
        if "type" in el.attrib:
            return self.type_by_name(self._resolve(doc, el.attrib["type"]))
        ct_el = el.find(_x("complexType"))
        if ct_el is not None:
            ct = ComplexType(name=None)
            self._fill_complex(doc, ct_el, ct)
            return ct
        st_el = el.find(_x("simpleType"))
        if st_el is not None:
            return self._simple_type(doc, st_el, None)
        if "substitutionGroup" in el.attrib:
            head = self._global_element(self._resolve(doc, el.attrib["substitutionGroup"]))
            return head.type
        return self.type_by_name((XS, "anyType"))

    def _global_element(self, qn: QName) -> ElementDecl:
        if qn in self.elements:
            return self.elements[qn]
        doc, el = self._raw_elements[qn]
        # Register a placeholder first so recursive references terminate.
        decl = ElementDecl(
            qname=qn,
            type=ComplexType(name=None),
            is_global=True,
            abstract=el.get("abstract") == "true",
            nillable=el.get("nillable") == "true",
        )
        self.elements[qn] = decl
        if "substitutionGroup" in el.attrib:
            decl.substitution_head = self._resolve(doc, el.attrib["substitutionGroup"])
        decl.type = self._element_type(doc, el)
        self.all_elements.append(decl)
        return decl

    def _local_or_ref(self, doc: _Doc, el: ET.Element) -> ElementDecl:
        if "ref" in el.attrib:
            return self._global_element(self._resolve(doc, el.attrib["ref"]))
        form = el.get("form")
        qualified = form == "qualified" if form else doc.element_qualified
        qn = (doc.tns if qualified else "", el.attrib["name"])
        decl = ElementDecl(
            qname=qn, type=self._element_type(doc, el), is_global=False, nillable=el.get("nillable") == "true"
        )
        self.all_elements.append(decl)
        return decl

    def all_types(self) -> list[TypeDef]:
        """Named types and the anonymous types of all element declarations."""
        out: list[TypeDef] = list(self._types.values())
        out += [d.type for d in self.all_elements]
        return out

    def substitution_members(self, head: ElementDecl) -> list[ElementDecl]:
        """The head and every element transitively substitutable for it.

        EXI 1.0 §8.5.4.1.6 leaves abstract heads out, but EXIficient (the ISO 15118 reference codec)
        keeps them in the SE list (e.g. ``BodyElement`` among the -2 body messages); byte-exactness
        with EXIficient decides, so they are kept.
        """
        out = [head]
        for d in self.elements.values():
            if d.substitution_head == head.qname:
                out.extend(self.substitution_members(d))
        return out
