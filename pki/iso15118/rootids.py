"""Matching the EV's ListOfRootCertificateIDs (X509IssuerName + X509SerialNumber) to root certificates.

EVs do not agree on how to write X509IssuerName: RFC 4514 strings (most specific RDN first), X.500 order
(``C=DE, O=..., CN=...``), OID or long attribute names, and Josev sends Python debug strings such as
``<Name(CN=V2GRootCA,O=Switch,C=UK,DC=V2G)>``. We therefore compare the *multiset* of (attribute, value) pairs,
attribute types mapped to one short name and values case-folded with whitespace collapsed, together with the exact
serial number. A root matches only if both agree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

_ALIASES = {
    "CN": "CN", "COMMONNAME": "CN", NameOID.COMMON_NAME.dotted_string: "CN",
    "O": "O", "ORGANIZATIONNAME": "O", NameOID.ORGANIZATION_NAME.dotted_string: "O",
    "OU": "OU", "ORGANIZATIONALUNITNAME": "OU", NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    "C": "C", "COUNTRYNAME": "C", NameOID.COUNTRY_NAME.dotted_string: "C",
    "DC": "DC", "DOMAINCOMPONENT": "DC", NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    "L": "L", "LOCALITYNAME": "L", NameOID.LOCALITY_NAME.dotted_string: "L",
    "ST": "ST", "S": "ST", "STATEORPROVINCENAME": "ST", NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    "E": "EMAIL", "EMAILADDRESS": "EMAIL", NameOID.EMAIL_ADDRESS.dotted_string: "EMAIL",
    "SERIALNUMBER": "SERIALNUMBER", NameOID.SERIAL_NUMBER.dotted_string: "SERIALNUMBER",
}
_WRAPPER = re.compile(r"^\s*<?\s*Name\s*\((.*)\)\s*>?\s*$", re.DOTALL)
_SPLIT = re.compile(r"(?<!\\)[,;+]")


@dataclass(frozen=True)
class RootId:
    issuer_name: str
    serial: int


def normalise_name(text: str) -> Counter[tuple[str, str]] | None:
    """(type, value) multiset of a name string in any of the spellings above; None if it cannot be parsed."""
    m = _WRAPPER.match(text)
    body = m.group(1) if m else text
    pairs: Counter[tuple[str, str]] = Counter()
    for part in _SPLIT.split(body):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        attr = _ALIASES.get(key.strip().upper().removeprefix("OID."))
        if attr is None:
            attr = key.strip().upper()
        clean = " ".join(value.replace("\\", "").strip().strip('"').split()).casefold()
        pairs[(attr, clean)] += 1
    return pairs or None


def _cert_pairs(name: x509.Name) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for attr in name:
        key = _ALIASES.get(attr.oid.dotted_string, attr.oid.dotted_string)
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        pairs[(key, " ".join(value.split()).casefold())] += 1
    return pairs


def matches(root_id: RootId, cert: x509.Certificate) -> bool:
    if root_id.serial != cert.serial_number:
        return False
    pairs = normalise_name(root_id.issuer_name)
    return pairs is not None and pairs == _cert_pairs(cert.issuer)


def select_roots(root_ids: Sequence[RootId], candidates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The candidate roots the EV listed, in the EV's order."""
    out: list[x509.Certificate] = []
    for rid in root_ids:
        for cert in candidates:
            if cert not in out and matches(rid, cert):
                out.append(cert)
    return out
