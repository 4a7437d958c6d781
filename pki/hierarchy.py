"""Declarative CA hierarchies, created by ``pnc init``.

The default set mirrors the roles a self-hosted Plug & Charge PKI plays (standards brief §3.5): CPO CA (SECC
leaves), CPS (signs contract installation responses), MO CA (contract certificates), an OEM hierarchy (for private
environments and tests; in production OEM roots are imported into the trust store), and the OCPP TLS hierarchy.
ISO 15118-20 hierarchies use P-521 by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.keys.base import KeyAlgorithm
from pki.profiles import CertKind, Generation, get_profile


class Progress(Protocol):
    def advance(self) -> None: ...


@dataclass(frozen=True)
class CaSpec:
    name: str
    kind: CertKind
    common_name: str
    parent: str | None = None


def _chain(prefix: str, root: CertKind, sub1: CertKind, sub2: CertKind, label: str, root_name: str | None = None,
           root_cn: str | None = None, tag: str = "") -> list[CaSpec]:
    specs = []
    if root_name is None:
        root_name = f"{prefix}-root"
        specs.append(CaSpec(root_name, root, root_cn or f"{label} Root CA{tag}"))
    specs += [
        CaSpec(f"{prefix}-sub1", sub1, f"{label} Sub-CA 1{tag}", root_name),
        CaSpec(f"{prefix}-sub2", sub2, f"{label} Sub-CA 2{tag}", f"{prefix}-sub1"),
    ]
    return specs


# Distinct CAs need distinct names: with the -2 and -20 roots in one trust store (a station supporting both), a
# relying party that looks issuers up by name finds the wrong CA (`openssl verify` then fails the -20 chain).
_GENERATION_TAGS = {"": "", "20": " (ISO 15118-20)", "448": " (ISO 15118-20 Ed448)"}


def iso15118_specs(suffix: str = "") -> list[CaSpec]:
    """V2G root with CPO and CPS chains; MO and OEM each with their own root. ``suffix`` names a parallel hierarchy
    (``20``: ISO 15118-20 P-521, ``448``: Ed448); its CAs get a tag in their CN so that every CA name is unique."""
    v2g = f"v2g{suffix}-root"
    tag = _GENERATION_TAGS.get(suffix, f" ({suffix})")
    return [
        CaSpec(v2g, CertKind.V2G_ROOT, f"V2G Root CA{tag}"),
        *_chain(f"cpo{suffix}", CertKind.V2G_ROOT, CertKind.CPO_SUB1, CertKind.CPO_SUB2, "CPO", root_name=v2g,
                tag=tag),
        *_chain(f"cps{suffix}", CertKind.V2G_ROOT, CertKind.CPS_SUB1, CertKind.CPS_SUB2, "CPS", root_name=v2g,
                tag=tag),
        *_chain(f"mo{suffix}", CertKind.MO_ROOT, CertKind.MO_SUB1, CertKind.MO_SUB2, "MO", tag=tag),
        *_chain(f"oem{suffix}", CertKind.OEM_ROOT, CertKind.OEM_SUB1, CertKind.OEM_SUB2, "OEM", tag=tag),
    ]


OCPP_SPECS = [
    CaSpec("csms-root", CertKind.CSMS_ROOT, "CSMS Root CA"),
    CaSpec("csms-sub", CertKind.CSMS_SUB, "CSMS Issuing CA", "csms-root"),
]


@dataclass(frozen=True)
class HierarchyPlan:
    generation: Generation
    specs: list[CaSpec]
    key_algorithm: KeyAlgorithm


def default_plans(*, with_iso15118_20: bool = True) -> list[HierarchyPlan]:
    plans = [
        HierarchyPlan(Generation.ISO15118_2, iso15118_specs(), KeyAlgorithm.P256),
        HierarchyPlan(Generation.OCPP, OCPP_SPECS, KeyAlgorithm.P256),
    ]
    if with_iso15118_20:
        plans.append(HierarchyPlan(Generation.ISO15118_20, iso15118_specs("20"), KeyAlgorithm.P521))
    return plans


def ca_subject(spec: CaSpec, *, organization: str, country: str, generation: Generation) -> x509.Name:
    profile = get_profile(spec.kind, generation)
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
    ]
    if profile.domain_component:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, profile.domain_component))
    return x509.Name(attrs)


def create_hierarchies(authority: Authority, plans: list[HierarchyPlan], *, organization: str, country: str,
                       actor: str = "system", progress: Progress | None = None) -> list[str]:
    """Create every CA of the plans that does not exist yet (re-running resumes an interrupted init)."""
    created: list[str] = []
    existing = {ca.name for ca in authority.cas()}
    for plan in plans:
        for spec in plan.specs:
            if spec.name in existing:
                continue
            subject = ca_subject(spec, organization=organization, country=country, generation=plan.generation)
            if spec.parent is None:
                authority.create_root(spec.name, spec.kind, plan.generation, subject,
                                      key_algorithm=plan.key_algorithm, actor=actor)
            else:
                authority.create_sub_ca(spec.name, spec.kind, spec.parent, subject,
                                        key_algorithm=plan.key_algorithm, actor=actor)
            created.append(spec.name)
            if progress is not None:
                progress.advance()
    return created
