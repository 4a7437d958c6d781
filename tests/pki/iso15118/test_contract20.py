"""ISO 15118-20 installation: SECP521 and X448 key encryption, several contracts, remaining count."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.iso15118.contract import ContractInstaller
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry
from pki.iso15118.trust import TrustStore
from pki.profiles import CertKind
from tests.conftest import make_hierarchies
from tests.pki.iso15118 import ev

PCID = "WMIV1234567890ABCD"


@pytest.mark.parametrize("curve", ["SECP521", "X448"])
def test_iso20_install(authority: Authority, curve: str, codec: Any) -> None:
    make_hierarchies(authority, iso20=True)
    registry = ContractRegistry(authority.db)
    installer = ContractInstaller(authority, registry, TrustStore(authority), CpsProvisioner(authority), codec)
    oem_key = ec.generate_private_key(ec.SECP521R1()) if curve == "SECP521" else ed448.Ed448PrivateKey.generate()
    sub2 = authority.ca("oem20-sub2")
    issued = authority.issue_for_public_key(
        CertKind.OEM_PROV_LEAF, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PCID)]), oem_key.public_key(),
        issuer=sub2)
    chain = [issued.certificate, *issued.chain]
    a = registry.create(owner="o", country="DE", provider="PNC", pcid=PCID, generation="iso15118-20")
    b = registry.create(owner="o", country="DE", provider="PNC", pcid=PCID, generation="iso15118-20")
    v2g20 = authority.ca_certificate(authority.ca("v2g20-root"))
    exi = ev.install_request_20(codec, oem_key, chain, [v2g20], max_chains=2, emaids=(b.emaid,))
    out = installer.process(exi, ev.NS20, "Install", station_id="CS-20")
    assert out.emaid == b.emaid and out.remaining == 1  # prioritised EMAID first, one more available
    res, _ = ev.check_response_20(codec, out.exi, oem_key, PCID)
    assert res["RemainingContractCertificateChains"] == 1 and res["Header"]["SessionID"] == b"\x20" * 8
    only_one = installer.process(ev.install_request_20(codec, oem_key, chain, [v2g20], max_chains=1), ev.NS20,
                                 "Install")
    assert only_one.remaining == 0 and only_one.emaid == a.emaid


def test_iso20_looping_walks_through_all_contracts(authority: Authority, codec: Any) -> None:
    """[V2G20-2493] NOTE 2: the EV repeats CertificateInstallationReq while chains remain; each request gets a
    contract not yet delivered (registry order: prioritised, then most recent), then it starts over."""
    make_hierarchies(authority, iso20=True)
    registry = ContractRegistry(authority.db, clock=authority.clock)
    installer = ContractInstaller(authority, registry, TrustStore(authority), CpsProvisioner(authority), codec)
    oem_key = ec.generate_private_key(ec.SECP521R1())
    issued = authority.issue_for_public_key(
        CertKind.OEM_PROV_LEAF, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PCID)]), oem_key.public_key(),
        issuer=authority.ca("oem20-sub2"))
    chain = [issued.certificate, *issued.chain]
    a, b, c = (registry.create(owner="o", country="DE", provider="PNC", pcid=PCID, generation="iso15118-20")
               for _ in range(3))
    v2g20 = authority.ca_certificate(authority.ca("v2g20-root"))

    def install(max_chains: int = 3, emaids: tuple[str, ...] = ()) -> tuple[str, int]:
        out = installer.process(ev.install_request_20(codec, oem_key, chain, [v2g20], max_chains=max_chains,
                                                      emaids=emaids), ev.NS20, "Install", station_id="CS-20")
        res, _ = ev.check_response_20(codec, out.exi, oem_key, PCID)
        assert res["RemainingContractCertificateChains"] == out.remaining
        return out.emaid, out.remaining

    assert install(emaids=(b.emaid,)) == (b.emaid, 2)  # the EV's choice first
    assert install(emaids=(b.emaid,)) == (c.emaid, 1)  # b is delivered now: the most recent pending one
    assert install(emaids=(b.emaid,)) == (a.emaid, 0)
    first_b = registry.get(b.emaid).certificate_id
    assert install(emaids=(b.emaid,)) == (b.emaid, 0)  # all delivered: re-issue the preferred one
    assert registry.get(b.emaid).certificate_id != first_b
    assert authority.certificate(first_b or 0).status == "revoked"  # superseded
    # a revoked (or expired) current certificate counts as not delivered
    from pki.revocation import revoke

    revoke(authority, authority.certificate(registry.get(a.emaid).certificate_id or 0), "keyCompromise",
           actor="test")
    assert install(max_chains=1) == (a.emaid, 0)  # remaining bounded by MaximumContractCertificateChains - 1
