"""Contract installation/update pipeline over the codec seam: a primitives-built EV checks every response, and every
failure maps to its ISO 15118 ResponseCode."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.audit import AuditLog
from pki.authority import Authority
from pki.clock import FixedClock
from pki.errors import PkiError
from pki.iso15118.contract import ContractInstaller, InstallFailure
from pki.iso15118.cps import CpsProvisioner
from pki.iso15118.registry import ContractRegistry
from pki.iso15118.trust import TrustStore
from pki.profiles import CertKind, Generation
from pki.store import repo
from tests.helpers import openssl_verify, pem
from tests.pki.iso15118 import ev
from tests.pki.iso15118.chains import oem_chain

PCID = "WMIV1234567890ABCD"
NS2 = ev.NS2


class Env:
    def __init__(self, authority: Authority, codec: Any) -> None:
        self.a = authority
        self.codec = codec
        self.registry = ContractRegistry(authority.db, clock=authority.clock)
        self.trust = TrustStore(authority)
        self.cps = CpsProvisioner(authority)
        self.installer = ContractInstaller(authority, self.registry, self.trust, self.cps, self.codec,
                                           organization="Test MO", country="DE")
        self.v2g_root = authority.ca_certificate(authority.ca("v2g-root"))
        self.mo_root = authority.ca_certificate(authority.ca("mo-root"))
        self.oem_key = ec.generate_private_key(ec.SECP256R1())
        self.oem_cert = self.oem_leaf(self.oem_key)

    def oem_leaf(self, key: ec.EllipticCurvePrivateKey, pcid: str = PCID, days: int | None = None) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, pcid),
                             x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "OEM")])
        return self.a.issue_for_public_key(CertKind.OEM_PROV_LEAF, subject, key.public_key(),
                                           issuer=self.a.ca("oem-sub2"), validity_days=days).certificate

    def request(self, **kw: Any) -> bytes:
        return ev.install_request(self.codec, kw.get("key", self.oem_key), kw.get("cert", self.oem_cert),
                                  kw.get("roots", [self.v2g_root]))

    def fail(self, exi: bytes, action: str = "Install") -> str:
        with pytest.raises(PkiError) as exc:
            self.installer.process(exi, NS2, action, station_id="CS-1")
        return exc.value.code


@pytest.fixture
def env(pki: Authority, codec: Any) -> Env:
    pki.clock = FixedClock(dt.datetime.now(dt.UTC))
    return Env(pki, codec)


def test_install_round_trip_checked_by_the_ev(env: Env) -> None:
    contract = env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    out = env.installer.process(env.request(), NS2, "Install", station_id="CS-1")
    assert out.response_code == "OK" and out.emaid == contract.emaid
    body, _, chain, cps = ev.check_response(env.codec, out.exi, "CertificateInstallationRes", env.oem_key)
    assert body["eMAID"]["value"] == contract.emaid
    assert chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == contract.emaid
    openssl_verify(chain[0], chain[1:], env.mo_root)  # contract chain: leaf, MO Sub-CA 2, MO Sub-CA 1
    openssl_verify(cps[0], cps[1:], env.v2g_root)  # CPS chain leads to the root the EV listed
    assert len(chain) == 3 and len(cps) == 3
    assert env.codec.decode_message(out.exi, NS2)["V2G_Message"]["Header"]["SessionID"] == b"\x01\x02\x03\x04\x05\x06\x07\x08"
    assert env.registry.get(contract.emaid).certificate_id == out.certificate_id
    # a second installation issues a fresh key and supersedes the first certificate
    again = env.installer.process(env.request(), NS2, "Install", station_id="CS-1")
    assert again.certificate_id != out.certificate_id
    old = repo.get_certificate(env.a.db, out.certificate_id)
    assert old is not None and old.status == "revoked" and old.revocation_reason == "superseded"


def test_iso2_with_several_contracts_installs_the_most_recent_or_the_prioritised_one(env: Env) -> None:
    """-2 has no looping: one contract per request, the most recent one unless the station passes the EV's
    prioritizedEMAIDs (OCPP 2.1); RemainingContractCertificateChains does not exist in -2."""
    assert isinstance(env.a.clock, FixedClock)
    old = env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    env.a.clock.advance(dt.timedelta(minutes=5))
    new = env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    for _ in range(2):  # stable: the same contract again, not the next one
        out = env.installer.process(env.request(), NS2, "Install", station_id="CS-1")
        body, _, chain, _ = ev.check_response(env.codec, out.exi, "CertificateInstallationRes", env.oem_key)
        assert out.emaid == new.emaid == body["eMAID"]["value"] and out.remaining == 0
        assert chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == new.emaid
    out = env.installer.process(env.request(), NS2, "Install", station_id="CS-1", prioritized=[old.emaid])
    assert out.emaid == old.emaid
    body, *_ = ev.check_response(env.codec, out.exi, "CertificateInstallationRes", env.oem_key)
    assert body["eMAID"]["value"] == old.emaid
    # a cancelled newest contract is skipped
    env.registry.cancel(new.emaid)
    assert env.installer.process(env.request(), NS2, "Install", station_id="CS-1").emaid == old.emaid


def test_cps_leaf_is_reused_and_renewed_near_expiry(env: Env) -> None:
    first = env.cps.for_roots(Generation.ISO15118_2, None)
    assert env.cps.for_roots(Generation.ISO15118_2, None).record_id == first.record_id
    assert len(repo.list_certificates(env.a.db, kind="cps-leaf")) == 1
    assert isinstance(env.a.clock, FixedClock)
    env.a.clock.set(first.not_after - dt.timedelta(days=3))  # inside the 14-day renewal window
    env.cps._cache.clear()
    renewed = env.cps.for_roots(Generation.ISO15118_2, None)
    assert renewed.record_id != first.record_id and renewed.not_after > first.not_after


def test_failure_codes(env: Env) -> None:
    # no contract
    assert env.fail(env.request()) == "FAILED_NoCertificateAvailable"
    c = env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    # tampered signature value
    tree = env.codec.decode_message(env.request(), NS2)
    sig = tree["V2G_Message"]["Header"]["Signature"]["SignatureValue"]
    sig["value"] = bytes([sig["value"][0] ^ 1]) + sig["value"][1:]
    assert env.fail(env.codec.encode_message(tree, NS2)) == "FAILED_SignatureError"
    # body changed after signing (digest mismatch)
    tree = env.codec.decode_message(env.request(), NS2)
    tree["V2G_Message"]["Body"]["CertificateInstallationReq"]["ListOfRootCertificateIDs"]["RootCertificateID"][0][
        "X509SerialNumber"] += 1
    assert env.fail(env.codec.encode_message(tree, NS2)) == "FAILED_SignatureError"
    # signed by another key than the OEM provisioning certificate's
    assert env.fail(env.request(key=ec.generate_private_key(ec.SECP256R1()))) == "FAILED_SignatureError"
    # foreign OEM root (not in the trust store)
    root, sub1, sub2, leaf = oem_chain("Foreign OEM", pcid=PCID)
    assert env.fail(env.request(key=leaf.key, cert=leaf.cert)) == "FAILED_CertChainError"
    # ... accepted once the operator trusts that OEM
    env.trust.add(b"".join(pem(x.cert) for x in (root, sub1, sub2)), "oem")
    assert env.installer.process(env.request(key=leaf.key, cert=leaf.cert), NS2, "Install").response_code == "OK"
    # no root the EV listed is ours
    assert env.fail(env.request(roots=[root.cert])) == "FAILED_NoCertificateAvailable"
    # expired OEM provisioning certificate
    short_key = ec.generate_private_key(ec.SECP256R1())
    short = env.oem_leaf(short_key, days=1)
    assert isinstance(env.a.clock, FixedClock)
    env.a.clock.advance(dt.timedelta(days=2))
    assert env.fail(env.request(key=short_key, cert=short)) == "FAILED_CertificateExpired"
    # revoked OEM provisioning certificate (one of ours)
    rec = repo.get_certificate_by_fingerprint(env.a.db, env.oem_cert.fingerprint(hashes.SHA256()).hex())
    assert rec is not None and rec.id is not None
    from pki.revocation import revoke

    revoke(env.a, env.a.certificate(rec.id), "keyCompromise", actor="test")
    assert env.fail(env.request()) == "FAILED_CertificateRevoked"
    # cancelled contract
    env.registry.cancel(c.emaid)
    key2 = ec.generate_private_key(ec.SECP256R1())
    assert env.fail(env.request(key=key2, cert=env.oem_leaf(key2))) == "FAILED_ContractCanceled"
    # garbage
    assert env.fail(b"MSGnot json") == "FAILED"
    assert env.fail(b"\x80\x98\x02\x00garbage") == "FAILED"
    assert env.fail(env.request(), action="Update") == "FAILED"


def test_oversize_response_withdraws_the_certificate(env: Env) -> None:
    env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    with pytest.raises(InstallFailure) as exc:
        env.installer.process(env.request(), NS2, "Install", max_response_bytes=500)
    assert exc.value.code == "FAILED" and "500" in exc.value.message
    rows = repo.list_certificates(env.a.db, kind="contract-leaf")
    assert len(rows) == 1 and rows[0].status == "revoked"
    # the contract is not left pointing at the withdrawn certificate (it was linked when it became valid)
    [contract] = env.registry.list(owner="alice")
    assert contract.certificate_id is None
    assert AuditLog(env.a.db, env.a.keys).verify().ok


def test_update_reissues_same_emaid_and_supersedes(env: Env) -> None:
    c = env.registry.create(owner="alice", country="DE", provider="PNC", pcid=PCID)
    first = env.installer.process(env.request(), NS2, "Install")
    _, key, chain, _ = ev.check_response(env.codec, first.exi, "CertificateInstallationRes", env.oem_key)
    upd = env.installer.process(ev.update_request(env.codec, key, chain, c.emaid, [env.v2g_root]), NS2, "Update")
    body, _, new_chain, _ = ev.check_response(env.codec, upd.exi, "CertificateUpdateRes", key)
    assert body["eMAID"]["value"] == c.emaid and new_chain[0].serial_number != chain[0].serial_number
    old = repo.get_certificate(env.a.db, first.certificate_id)
    assert old is not None and old.status == "revoked" and old.revocation_reason == "superseded"
    # the superseded certificate cannot be used for another update
    assert env.fail(ev.update_request(env.codec, key, chain, c.emaid, [env.v2g_root]), "Update") == \
        "FAILED_CertificateRevoked"
    # wrong EMAID for the certificate, and a cancelled contract
    new_key = _decrypt_for(env, body, key)
    assert env.fail(ev.update_request(env.codec, new_key, new_chain, "DEPNC0000000010", [env.v2g_root]),
                    "Update") == "FAILED_CertChainError"
    env.registry.cancel(c.emaid)
    assert env.fail(ev.update_request(env.codec, new_key, new_chain, c.emaid, [env.v2g_root]), "Update") == \
        "FAILED_ContractCanceled"


def _decrypt_for(env: Env, body: dict[str, Any], peer_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    from pki.iso15118.keywrap import decrypt_contract_key_2

    return decrypt_contract_key_2(body["ContractSignatureEncryptedPrivateKey"]["value"], body["DHpublickey"]["value"],
                                  peer_key)
