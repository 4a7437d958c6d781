"""ISO 15118-2 and ISO 15118-20 PKI profiles (V2G/CPO, CPS, MO, OEM).

Sources (see docs/profiles.md): ISO 15118-2 [V2G2-006/007/009/010] — ecdsa-with-SHA256 on secp256r1, at most three
certificates below the root, at most 800 bytes DER; ISO 15118-20 — secp521r1 with ecdsa-with-SHA512 or Ed448, at
most 1600 bytes. Extension sets follow the reference PKI scripts of Josev and EVerest: no EKU, keyUsage and
basicConstraints critical, pathLen 1 on Sub-CA 1 and 0 on Sub-CA 2, a DC attribute naming the role.
"""

from __future__ import annotations

from pki.keys.base import KeyAlgorithm
from pki.profiles.base import CA_USAGE, CertKind, CnRule, Generation, KeyUsageFlags, Profile

_P256 = frozenset({KeyAlgorithm.P256})
_P521_ED448 = frozenset({KeyAlgorithm.P521, KeyAlgorithm.ED448})

# (kind, is_ca, pathlen, usage, dc, default days, max days, cn rule, issuer kind, description)
_TABLE: list[tuple[CertKind, bool, int | None, KeyUsageFlags, str, int, int, CnRule, CertKind | None, str]] = [
    (CertKind.V2G_ROOT, True, None, CA_USAGE, "V2G", 40 * 365, 40 * 365 + 10, CnRule.ANY, None,
     "V2G root CA: trust anchor of the CPO and CPS chains (and optionally MO/OEM)"),
    (CertKind.CPO_SUB1, True, 1, CA_USAGE, "V2G", 4 * 365, 6 * 365, CnRule.ANY, CertKind.V2G_ROOT,
     "CPO Sub-CA 1 under the V2G root"),
    (CertKind.CPO_SUB2, True, 0, CA_USAGE, "V2G", 2 * 365, 4 * 365, CnRule.ANY, CertKind.CPO_SUB1,
     "CPO Sub-CA 2: issues SECC (EVSE) leaf certificates"),
    (CertKind.SECC_LEAF, False, None, KeyUsageFlags(digital_signature=True, key_agreement=True), "CPO",
     90, 2 * 365, CnRule.EVSE_OR_SECC_ID, CertKind.CPO_SUB2,
     "SECC leaf: TLS server certificate of the charging station towards the EV"),
    (CertKind.CPS_SUB1, True, 1, CA_USAGE, "CPS", 4 * 365, 6 * 365, CnRule.ANY, CertKind.V2G_ROOT,
     "Certificate Provisioning Service Sub-CA 1"),
    (CertKind.CPS_SUB2, True, 0, CA_USAGE, "CPS", 2 * 365, 4 * 365, CnRule.ANY, CertKind.CPS_SUB1,
     "CPS Sub-CA 2: issues CPS signing leaves"),
    (CertKind.CPS_LEAF, False, None, KeyUsageFlags(digital_signature=True), "CPS", 90, 2 * 365, CnRule.ANY,
     CertKind.CPS_SUB2, "CPS leaf: signs CertificateInstallationRes/UpdateRes contents"),
    (CertKind.MO_ROOT, True, None, CA_USAGE, "MO", 40 * 365, 40 * 365 + 10, CnRule.ANY, None,
     "Mobility operator (eMSP) root CA"),
    (CertKind.MO_SUB1, True, 1, CA_USAGE, "MO", 4 * 365, 6 * 365, CnRule.ANY, CertKind.MO_ROOT, "MO Sub-CA 1"),
    (CertKind.MO_SUB2, True, 0, CA_USAGE, "MO", 2 * 365, 4 * 365, CnRule.ANY, CertKind.MO_SUB1,
     "MO Sub-CA 2: issues contract certificates"),
    (CertKind.CONTRACT_LEAF, False, None,
     KeyUsageFlags(digital_signature=True, content_commitment=True, key_agreement=True), "MO",
     2 * 365, 4 * 365, CnRule.EMAID, CertKind.MO_SUB2,
     "Contract certificate: CN = EMAID; installed in the EV, used for PnC authorisation"),
    (CertKind.OEM_ROOT, True, None, CA_USAGE, "OEM", 40 * 365, 40 * 365 + 10, CnRule.ANY, None,
     "Vehicle manufacturer (OEM) root CA"),
    (CertKind.OEM_SUB1, True, 1, CA_USAGE, "OEM", 4 * 365, 6 * 365, CnRule.ANY, CertKind.OEM_ROOT, "OEM Sub-CA 1"),
    (CertKind.OEM_SUB2, True, 0, CA_USAGE, "OEM", 4 * 365, 6 * 365, CnRule.ANY, CertKind.OEM_SUB1,
     "OEM Sub-CA 2: issues OEM provisioning certificates"),
    (CertKind.OEM_PROV_LEAF, False, None, KeyUsageFlags(digital_signature=True, key_agreement=True), "OEM",
     4 * 365, 20 * 365, CnRule.PCID, CertKind.OEM_SUB2,
     "OEM provisioning certificate: CN = PCID; identifies the EV for contract installation"),
]


def _profiles(generation: Generation) -> list[Profile]:
    algorithms = _P256 if generation is Generation.ISO15118_2 else _P521_ED448
    size = 800 if generation is Generation.ISO15118_2 else 1600
    return [
        Profile(
            kind=kind,
            generation=generation,
            is_ca=is_ca,
            path_length=pathlen,
            key_usage=usage,
            key_algorithms=algorithms,
            default_validity_days=days,
            max_validity_days=max_days,
            domain_component=dc,
            max_der_size=size,
            aia=True,
            crl_distribution_point=False,  # keeps certificates small; CRLs are still served per CA
            cn_rule=cn_rule,
            issuer_kind=issuer,
            description=desc,
        )
        for kind, is_ca, pathlen, usage, dc, days, max_days, cn_rule, issuer, desc in _TABLE
    ]


ISO15118_2_PROFILES = _profiles(Generation.ISO15118_2)
ISO15118_20_PROFILES = _profiles(Generation.ISO15118_20)
