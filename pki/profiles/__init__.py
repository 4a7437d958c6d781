"""Certificate profiles: ISO 15118-2, ISO 15118-20, OCPP TLS and the OCSP signer."""

from __future__ import annotations

from pki.errors import NotFound
from pki.profiles.base import CertKind, CnRule, Generation, KeyUsageFlags, Profile
from pki.profiles.iso15118 import ISO15118_2_PROFILES, ISO15118_20_PROFILES
from pki.profiles.ocpp_tls import OCPP_PROFILES, ocsp_signer_profile

_REGISTRY: dict[tuple[CertKind, Generation], Profile] = {
    (p.kind, p.generation): p for p in [*ISO15118_2_PROFILES, *ISO15118_20_PROFILES, *OCPP_PROFILES]
}


def get_profile(kind: CertKind, generation: Generation) -> Profile:
    try:
        return _REGISTRY[(kind, generation)]
    except KeyError:
        raise NotFound(f"no profile for kind {kind.value!r} in generation {generation.value!r}") from None


def all_profiles() -> list[Profile]:
    return list(_REGISTRY.values())


def default_generation(kind: CertKind) -> Generation:
    """OCPP kinds exist only in the OCPP generation; ISO kinds default to ISO 15118-2."""
    if (kind, Generation.OCPP) in _REGISTRY:
        return Generation.OCPP
    return Generation.ISO15118_2


__all__ = [
    "CertKind",
    "CnRule",
    "Generation",
    "KeyUsageFlags",
    "Profile",
    "all_profiles",
    "default_generation",
    "get_profile",
    "ocsp_signer_profile",
]
