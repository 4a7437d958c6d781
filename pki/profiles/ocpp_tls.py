"""OCPP TLS hierarchy (security profiles 2 and 3) and the delegated OCSP signer.

OCPP 2.0.1 A00: keys RSA >= 2048 or EC >= 224 bits (we accept P-256 and above), SHA-256 signatures, station
certificate CN = the station's unique serial number and O = its organisation, CSMS server certificate CN = FQDN.
The station CA must sign both RSA and EC CSRs because CSMSs offer both cipher-suite families (A00.FR.317/421).
"""

from __future__ import annotations

from pki.keys.base import KeyAlgorithm
from pki.profiles.base import (
    CA_USAGE,
    CLIENT_AUTH,
    OCSP_SIGNING,
    SERVER_AUTH,
    CertKind,
    CnRule,
    Generation,
    KeyUsageFlags,
    Profile,
)

_TLS_KEYS = frozenset(
    {
        KeyAlgorithm.P256,
        KeyAlgorithm.P384,
        KeyAlgorithm.P521,
        KeyAlgorithm.RSA2048,
        KeyAlgorithm.RSA3072,
        KeyAlgorithm.RSA4096,
    }
)

# A00.FR.509: O = the organisation owning the certificate (the CSMS checks it on every TLS connect, A00.FR.404)
_CN_AND_O = frozenset({"CN", "O"})

OCPP_PROFILES = [
    Profile(
        kind=CertKind.CSMS_ROOT, generation=Generation.OCPP, is_ca=True, path_length=None, key_usage=CA_USAGE,
        key_algorithms=_TLS_KEYS, default_validity_days=20 * 365, max_validity_days=40 * 365, aia=False,
        description="CSMS root: installed on stations as CSMSRootCertificate; anchors server and station certs",
    ),
    Profile(
        kind=CertKind.CSMS_SUB, generation=Generation.OCPP, is_ca=True, path_length=0, key_usage=CA_USAGE,
        key_algorithms=_TLS_KEYS, default_validity_days=5 * 365, max_validity_days=10 * 365,
        crl_distribution_point=True, issuer_kind=CertKind.CSMS_ROOT,
        description="Station/CSMS issuing CA below the CSMS root",
    ),
    Profile(
        kind=CertKind.CSMS_SERVER, generation=Generation.OCPP, is_ca=False, path_length=None,
        key_usage=KeyUsageFlags(digital_signature=True), key_algorithms=_TLS_KEYS,
        default_validity_days=365, max_validity_days=398, extended_key_usage=(SERVER_AUTH,),
        crl_distribution_point=True, cn_rule=CnRule.FQDN, issuer_kind=CertKind.CSMS_SUB,
        required_subject_attributes=_CN_AND_O,
        description="CSMS TLS server certificate (CN = FQDN, SAN dNSName = FQDN for modern TLS clients)",
    ),
    Profile(
        kind=CertKind.STATION_CLIENT, generation=Generation.OCPP, is_ca=False, path_length=None,
        key_usage=KeyUsageFlags(digital_signature=True), key_algorithms=_TLS_KEYS,
        default_validity_days=365, max_validity_days=2 * 365, extended_key_usage=(CLIENT_AUTH,),
        crl_distribution_point=True, cn_rule=CnRule.STATION_SERIAL, issuer_kind=CertKind.CSMS_SUB,
        required_subject_attributes=_CN_AND_O,
        description="Charging-station TLS client certificate (security profile 3): CN = serial, O = organisation",
    ),
]


def ocsp_signer_profile(generation: Generation, key_algorithms: frozenset[KeyAlgorithm]) -> Profile:
    """Delegated OCSP responder certificate, issued directly by the CA whose certificates it answers for."""
    return Profile(
        kind=CertKind.OCSP_SIGNER, generation=generation, is_ca=False, path_length=None,
        key_usage=KeyUsageFlags(digital_signature=True), key_algorithms=key_algorithms,
        default_validity_days=7, max_validity_days=31, extended_key_usage=(OCSP_SIGNING,),
        max_der_size={Generation.ISO15118_20: 1600, Generation.ISO15118_2: 800}.get(generation),
        aia=False, ocsp_nocheck=True, issuer_kind=None,
        description="Delegated OCSP signer (id-kp-OCSPSigning, id-pkix-ocsp-nocheck, short-lived)",
    )
