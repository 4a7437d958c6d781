"""Builds the :class:`~pki.iso15118.service.ContractService` from settings (used by ``Services.contracts``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki.errors import InvalidRequest
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry, ProvisioningPolicy, RegistryPolicy
from pki.iso15118.service import ContractService
from pki.iso15118.trust import TrustStore
from pki.iso15118.upstream import ProviderRouter
from pki.iso15118.xmldsig import load_exi_codec

if TYPE_CHECKING:
    from api.context import Services


def build_contract_service(services: Services) -> ContractService:
    s = services.settings
    authority = services.authority
    try:
        policy = RegistryPolicy(ProvisioningPolicy(s.contract_provisioning_policy), s.contract_default_owner,
                                s.contract_default_country, s.contract_default_provider)
    except ValueError:
        raise InvalidRequest("PNC_CONTRACT_PROVISIONING_POLICY must be bound, bind-first or auto-create") from None
    routing = s.contract_routing or (s.contract_routing_file.read_text() if s.contract_routing_file else "")
    router = ProviderRouter.from_json(routing) if routing.strip() else ProviderRouter()
    return ContractService(
        authority,
        registry=ContractRegistry(authority.db, clock=authority.clock, policy=policy),
        trust=TrustStore(authority),
        cps=CpsProvisioner(authority, organization=s.organization, country=s.country),
        codec=load_exi_codec(),
        router=router,
        organization=s.organization,
        country=s.country,
        require_contract_root_match=s.contract_require_root_match,
        revocation_listeners=(services.ocsp.on_revocation, services.crl.on_revocation),
    )
