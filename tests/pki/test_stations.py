"""Station registry, credentials and CSR plans; C07 contract authorization outcomes (no transport)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki import contract_auth, stations
from pki.authority import Authority
from pki.errors import Conflict, InvalidRequest, PolicyViolation
from pki.identifiers import generate_emaid
from pki.profiles import CertKind
from pki.store import repo
from pki.store.models import CertificateAuthority
from tests.helpers import make_csr, p256

EMAID = generate_emaid("DE", "PNC", "C12345678")


def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    a = stations.hash_password("a-long-enough-password", n=2**10)
    b = stations.hash_password("a-long-enough-password", n=2**10)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert stations.verify_password("a-long-enough-password", a)
    assert not stations.verify_password("a-long-enough-passworD", a)
    assert not stations.verify_password("x", "garbage") and not stations.verify_password("x", None)


def test_register_validates_and_refuses_duplicates(pki: Authority) -> None:
    spec = stations.StationSpec("ST-1", "SN-1", "Test CPO", secc_ids=("DE*PNC*E12345*1",))
    station, generated = stations.register_station(pki.db, spec, scrypt_n=2**10)
    assert generated is not None and stations.verify_password(generated, station.password_hash)
    with pytest.raises(Conflict):
        stations.register_station(pki.db, spec, scrypt_n=2**10)
    for bad in (stations.StationSpec("bad/id", "SN", "O"), stations.StationSpec("ok", "http://x", "O"),
                stations.StationSpec("ok", "SN", "O", secc_ids=("nope",)),
                stations.StationSpec("ok", "SN", "O", password="short"),
                stations.StationSpec("ok", "SN", "O", security_profile=4)):
        with pytest.raises(InvalidRequest):
            stations.register_station(pki.db, bad, scrypt_n=2**10)


def test_sign_plan_binds_the_csr_to_the_registered_station(pki: Authority) -> None:
    station, _ = stations.register_station(pki.db, stations.StationSpec(
        "ST-2", "SN-2", "Test CPO", secc_ids=("DE*PNC*E12345*1",), password="p" * 20), scrypt_n=2**10)
    plan = stations.plan_sign(pki, station, make_csr(p256(), CN="SN-2", O="Test CPO").decode(),
                              "ChargingStationCertificate", version="2.0.1")
    assert plan.kind is CertKind.STATION_CLIENT and plan.issuer == "csms-sub"
    combined = stations.plan_sign(pki, station, make_csr(p256(), CN="DE*PNC*E12345*1", O="Test CPO",
                                                         DC="CPO").decode(), None, version="2.0.1")
    assert combined.kind is CertKind.SECC_LEAF and combined.certificate_type is None
    with pytest.raises(PolicyViolation):  # another station's serial
        stations.plan_sign(pki, station, make_csr(p256(), CN="SN-3", O="Test CPO").decode(),
                           "ChargingStationCertificate", version="2.0.1")
    with pytest.raises(InvalidRequest):  # 2.1-only type on 2.0.1
        stations.plan_sign(pki, station, make_csr(p256(), CN="SN-2", O="Test CPO").decode(), "V2G20Certificate",
                           version="2.0.1")


def test_sign_plan_never_picks_a_ca_whose_creation_was_interrupted(pki: Authority) -> None:
    """A CA row with a key but no certificate yet (creation cut off) is newer than the working Sub-CA; the plan
    must keep to the one that can sign, as ``issuer_for`` does."""
    station, _ = stations.register_station(pki.db, stations.StationSpec(
        "ST-9", "SN-9", "Test CPO", password="p" * 20), scrypt_n=2**10)
    working = pki.ca("csms-sub")
    repo.add_ca(pki.db, CertificateAuthority(name="csms-sub-half", kind=working.kind, generation=working.generation,
                                             parent_id=working.parent_id, key_uri="file:half",
                                             key_algorithm=working.key_algorithm))
    pki.forget_cas()
    plan = stations.plan_sign(pki, station, make_csr(p256(), CN="SN-9", O="Test CPO").decode(),
                              "ChargingStationCertificate", version="2.0.1")
    assert plan.issuer == "csms-sub"


def test_only_self_signed_roots_are_installable(pki: Authority) -> None:
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    root = pki.ca_certificate(pki.ca("mo-root"))
    assert stations.check_installable_root(pem(root)) == root
    with pytest.raises(PolicyViolation):
        stations.check_installable_root(pem(pki.ca_certificate(pki.ca("mo-sub1"))))
    with pytest.raises(InvalidRequest):
        stations.check_installable_root(pem(root) + pem(root))
    with pytest.raises(InvalidRequest):
        stations.check_installable_root("not pem")


def _contract(pki: Authority, emaid: str = EMAID) -> tuple[str, x509.Certificate]:
    issued = pki.issue_from_csr(make_csr(p256(), CN=emaid, O="Test MO", DC="MO"), CertKind.CONTRACT_LEAF)
    return issued.chain_pem(), issued.certificate


def test_contract_authorization_outcomes(pki: Authority) -> None:
    chain, leaf = _contract(pki)
    now = pki.clock.now()
    good = contract_auth.db_status(pki)

    def run(pem: str, at: dt.datetime = now, token: str = EMAID) -> tuple[str, str]:
        o = contract_auth.authorize(pki, token, certificate_pem=pem, hash_data=None, status_of=good, now=at)
        return o.id_token_status, o.certificate_status

    assert run(chain) == ("Accepted", "Accepted")
    assert run(chain, token=EMAID.lower()) == ("Accepted", "Accepted")  # eMAID compared case-insensitively
    assert run(chain, at=leaf.not_valid_after_utc + dt.timedelta(days=1)) == ("Expired", "CertificateExpired")
    assert run(chain, token=generate_emaid("DE", "PNC", "C99999999")) == ("Invalid", "ContractCancelled")
    # the leaf's signature broken: re-sign the same TBS content with another key under the same issuer name
    forged = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
              .public_key(leaf.public_key()).serial_number(leaf.serial_number)
              .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
              .sign(p256(), hashes.SHA256()))
    rest = chain.split("-----END CERTIFICATE-----\n", 1)[1]
    assert run(forged.public_bytes(serialization.Encoding.PEM).decode() + rest) == ("Invalid", "SignatureError")
    assert run(rest.split("-----END CERTIFICATE-----\n", 1)[1]) == ("Invalid", "ContractCancelled")  # CN = Sub-CA
    assert run("garbage") == ("Invalid", "CertChainError")
    revoked = contract_auth.authorize(pki, EMAID, certificate_pem=chain, hash_data=None,
                                      status_of=lambda h: "revoked", now=now)
    assert (revoked.id_token_status, revoked.certificate_status) == ("Invalid", "CertificateRevoked")
    none = contract_auth.authorize(pki, EMAID, certificate_pem=None, hash_data=None, status_of=good, now=now)
    assert none.certificate_status == "NoCertificateAvailable"
    bad_hash = contract_auth.authorize(pki, EMAID, certificate_pem=None, status_of=good, now=now,
                                       hash_data=[{"hashAlgorithm": "SHA256", "issuerNameHash": "zz",
                                                   "issuerKeyHash": "00", "serialNumber": "1"}])
    assert bad_hash.certificate_status == "CertChainError"
