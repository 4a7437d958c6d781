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
from tests.pki.iso15118.conftest import is_real_exi

PCID = "WMIV1234567890ABCD"


@pytest.mark.parametrize("curve", ["SECP521", "X448"])
def test_iso20_install(authority: Authority, curve: str, codec: Any) -> None:
    if curve == "X448" and is_real_exi(codec):
        pytest.xfail("the -20 XSD fixes dhPublicKeyType at 133 bytes, but [V2G20-2495] forbids padding the 56-byte "
                     "X448 key: X448 responses cannot be encoded until the schema/standard conflict is resolved")
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
