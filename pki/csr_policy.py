"""What a CSR must satisfy before any key is touched.

Following step-ca's "sign options", a policy is a list of small single-purpose checks, each raising its own precise
:class:`PolicyViolation`; the first failure wins. Checks never see the issuer key.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from pki import identifiers
from pki.errors import InvalidRequest, PolicyViolation
from pki.keys.base import public_key_algorithm
from pki.profiles.base import CnRule, Profile

MAX_CSR_PEM = 10_000  # OCPP SignCertificate.csr is <= 5500 chars; leave room for RSA-4096 via REST

_ATTR_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
}


@dataclass(frozen=True)
class SubjectExpectation:
    """What the requester's identity demands of the subject (e.g. the registered station's serial and O).

    ``None`` fields are not checked. ``cn_any_of`` lets a station present any of its SECC/EVSE IDs.
    """

    common_name: str | None = None
    cn_any_of: tuple[str, ...] = ()
    organization: str | None = None
    country: str | None = None


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CSR_PEM:
        raise InvalidRequest(f"CSR is {len(raw)} bytes, over the {MAX_CSR_PEM}-byte limit")
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_csr(raw)
        return x509.load_der_x509_csr(raw)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError (found by fuzzing: a 500)
        raise InvalidRequest("CSR is not a parsable PKCS#10 request (PEM or DER)") from None


def name_attributes(name: x509.Name) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for attr in name:
        key = _ATTR_NAMES.get(attr.oid, attr.oid.dotted_string)
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        out.setdefault(key, []).append(value)
    return out


def _single(attrs: dict[str, list[str]], key: str) -> str | None:
    values = attrs.get(key, [])
    if len(values) > 1:
        raise PolicyViolation(f"subject has {len(values)} {key} attributes; exactly one is allowed")
    return values[0] if values else None


class CsrView:
    """A CSR with its subject, subject attributes and public key decoded once.

    cryptography builds a new ``Name`` (and key object) on every ``csr.subject`` / ``csr.public_key()`` call, ~5 µs
    each, and the checks plus the issuer ask for them about eight times per CSR: in bulk issuance that was more
    than the database work per certificate."""

    __slots__ = ("_attrs", "_key", "csr", "subject")

    def __init__(self, csr: x509.CertificateSigningRequest) -> None:
        self.csr = csr
        try:
            self.subject = csr.subject  # cryptography parses the subject lazily, here
        except ValueError:  # a subject that does not parse (found by fuzzing: was a 500 over REST)
            raise InvalidRequest("CSR subject is not a parsable X.509 name") from None
        self._attrs: dict[str, list[str]] | None = None
        self._key: CertificatePublicKeyTypes | None = None

    @property
    def attrs(self) -> dict[str, list[str]]:
        if self._attrs is None:
            self._attrs = name_attributes(self.subject)
        return self._attrs

    def public_key(self) -> CertificatePublicKeyTypes:
        if self._key is None:
            self._key = self.csr.public_key()
        return self._key


Check = Callable[[CsrView, Profile, SubjectExpectation], None]


def check_signature(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    """Proof of possession: the CSR must be signed by the key it certifies."""
    try:
        ok = csr.csr.is_signature_valid
    except Exception:  # unsupported algorithms raise instead of returning False
        ok = False
    if not ok:
        raise PolicyViolation("CSR signature does not verify (no proof of possession of the private key)",
                              code="InvalidCSRSignature")


def check_key(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    try:
        key: CertificatePublicKeyTypes = csr.public_key()
    except Exception:
        raise PolicyViolation("CSR public key cannot be parsed", code="InvalidKey") from None
    alg = public_key_algorithm(key)
    if alg is None or alg not in profile.key_algorithms:
        allowed = ", ".join(sorted(a.value for a in profile.key_algorithms))
        raise PolicyViolation(f"key {_describe_key(key)} is not allowed for {profile.kind.value} "
                              f"({profile.generation.value}); allowed: {allowed}", code="InvalidKey")


def _describe_key(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    return type(key).__name__


def _check_value(key: str, value: str) -> None:
    """No blank values, no padding, no control or format characters: names are compared and displayed verbatim
    (audit log, operator console, station logs), so what cannot be seen must not be in them."""
    if not value.strip():
        raise PolicyViolation(f"subject {key} is empty", code="InvalidSubject")
    if value != value.strip():
        raise PolicyViolation(f"subject {key} {value!r} has leading or trailing whitespace", code="InvalidSubject")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise PolicyViolation(f"subject {key} contains the non-printable character U+{ord(ch):04X}",
                                  code="InvalidSubject")


def check_attributes(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    attrs = csr.attrs
    unknown = set(attrs) - set(profile.allowed_subject_attributes)
    if unknown:
        raise PolicyViolation(f"subject attributes {sorted(unknown)} are not allowed", code="InvalidSubject")
    if not attrs.get("CN"):
        raise PolicyViolation("subject has no CN", code="InvalidSubject")
    for key, values in attrs.items():
        for value in values:
            _check_value(key, value)
    missing = [key for key in sorted(profile.required_subject_attributes) if not attrs.get(key)]
    if missing:
        raise PolicyViolation(f"subject has no {', '.join(missing)}; {profile.kind.value} requires it",
                              code="InvalidSubject")
    _single(attrs, "CN")
    _single(attrs, "O")
    country = _single(attrs, "C")
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        raise PolicyViolation(f"subject C {country!r} is not an ISO 3166 alpha-2 code", code="InvalidSubject")


def check_domain_component(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    if profile.domain_component is None:
        return
    dcs = csr.attrs.get("DC", [])
    if dcs != [profile.domain_component]:
        found = ",".join(dcs) or "none"
        raise PolicyViolation(f"subject DC must be {profile.domain_component!r} for {profile.kind.value}, "
                              f"found {found}", code="InvalidSubject")


_FQDN = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def check_common_name(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    cn = csr.attrs["CN"][0]
    rule = profile.cn_rule
    try:
        if rule is CnRule.EMAID:
            emaid = identifiers.parse_emaid(cn, require_check_digit=True)
            if emaid.normalized != cn:
                # the EV copies the CN into eMAID fields of at most 15 characters (ISO 15118-2 eMAIDType)
                raise PolicyViolation(f"subject CN: EMAID {cn!r} must be written as {emaid.normalized!r} (upper case, "
                                      "no separators, 15 characters)", code="InvalidSubject")
        elif rule is CnRule.PCID:
            identifiers.parse_pcid(cn)
        elif rule is CnRule.EVSE_OR_SECC_ID:
            _evse_or_secc(cn)
    except identifiers.IdentifierError as exc:
        raise PolicyViolation(f"subject CN: {exc}", code="InvalidSubject") from None
    if rule is CnRule.STATION_SERIAL:
        # A00.FR.511: the unique serial number; must not look like a URL or an IP address.
        if "://" in cn or _IPV4.match(cn) or ":" in cn:
            raise PolicyViolation(f"subject CN {cn!r} must be the station serial number, not a URL or IP address",
                                  code="InvalidSubject")
    if rule is CnRule.FQDN and (not _FQDN.match(cn) or _IPV4.match(cn)):
        # A00.FR.510: the CSMS server certificate names the host, not an address
        raise PolicyViolation(f"subject CN {cn!r} is not a fully qualified domain name", code="InvalidSubject")
    if len(cn) > 64:
        raise PolicyViolation(f"subject CN is {len(cn)} characters; X.509 allows 64", code="InvalidSubject")


def _evse_or_secc(cn: str) -> None:
    try:
        identifiers.parse_evse_id(cn)
        return
    except identifiers.IdentifierError as evse_error:
        try:
            identifiers.parse_secc_id(cn)
        except identifiers.IdentifierError:
            raise evse_error from None


def check_expectation(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    attrs = csr.attrs
    cn = attrs["CN"][0]
    if expect.common_name is not None and cn != expect.common_name:
        raise PolicyViolation(f"subject CN {cn!r} does not match the requester's identity {expect.common_name!r}",
                              code="InvalidSubject")
    if expect.cn_any_of and _norm(cn) not in {_norm(c) for c in expect.cn_any_of}:
        raise PolicyViolation(f"subject CN {cn!r} is not one of the requester's registered identifiers",
                              code="InvalidSubject")
    org = _first(attrs, "O")
    if expect.organization is not None and org != expect.organization:
        raise PolicyViolation(f"subject O {org!r} does not match the registered organisation "
                              f"{expect.organization!r}", code="InvalidSubject")
    country = _first(attrs, "C")
    if expect.country is not None and country != expect.country:
        raise PolicyViolation(f"subject C {country!r} does not match {expect.country!r}", code="InvalidSubject")


def _first(attrs: dict[str, list[str]], key: str) -> str | None:
    values = attrs.get(key)
    return values[0] if values else None


def _norm(value: str) -> str:
    return value.replace("*", "").replace("-", "").upper()


def check_no_ca_request(csr: CsrView, profile: Profile, expect: SubjectExpectation) -> None:
    """A leaf CSR asking for CA:true is refused rather than silently downgraded."""
    try:
        bc = csr.csr.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise PolicyViolation("CSR extensions cannot be parsed", code="InvalidCSR") from None
    if bc.ca and not profile.is_ca:
        raise PolicyViolation("CSR requests CA:true for a leaf profile", code="InvalidCSR")


DEFAULT_CHECKS: tuple[Check, ...] = (
    check_signature,
    check_key,
    check_attributes,
    check_domain_component,
    check_common_name,
    check_no_ca_request,
    check_expectation,
)


def evaluate(csr: x509.CertificateSigningRequest | CsrView, profile: Profile,
             expect: SubjectExpectation | None = None, checks: tuple[Check, ...] = DEFAULT_CHECKS) -> CsrView:
    """Run every check; raises the first :class:`PolicyViolation`. Returns the decoded view, for the issuer to
    reuse its subject and key."""
    view = csr if isinstance(csr, CsrView) else CsrView(csr)
    wanted = expect or SubjectExpectation()
    for check in checks:
        check(view, profile, wanted)
    return view
