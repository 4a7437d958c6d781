"""Every profile: build a chain, let openssl judge it (-x509_strict), and check each certificate against its
profile with an independent parser (asn1crypto), including the 800/1600-byte limits."""

from __future__ import annotations

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from pki.authority import Authority
from pki.hierarchy import OCPP_SPECS, HierarchyPlan, create_hierarchies, iso15118_specs
from pki.identifiers import generate_emaid
from pki.keys.base import KeyAlgorithm
from pki.profiles import CertKind, Generation, all_profiles, get_profile
from tests.helpers import make_csr, openssl_verify, p256, p521, rsa_key

ROOT_OF = {"cpo": "v2g", "cps": "v2g", "mo": "mo", "oem": "oem"}


def _leaf_csr(kind: CertKind, key: object) -> bytes:
    if kind is CertKind.SECC_LEAF:
        return make_csr(key, CN="DE*PNC*E12345*1", O="Test CPO", C="DE", DC="CPO")
    if kind is CertKind.CPS_LEAF:
        return make_csr(key, CN="CPS Leaf", O="Test CPS", C="DE", DC="CPS")
    if kind is CertKind.CONTRACT_LEAF:
        return make_csr(key, CN=generate_emaid("DE", "PNC", "A12345678"), O="Test MO", C="DE", DC="MO")
    if kind is CertKind.OEM_PROV_LEAF:
        return make_csr(key, CN="WMI12345678901234", O="Test OEM", C="DE", DC="OEM")
    if kind is CertKind.STATION_CLIENT:
        return make_csr(key, CN="SN-000123", O="Test CPO")
    if kind is CertKind.CSMS_SERVER:
        return make_csr(key, CN="csms.example.com", O="Test CPO")
    raise AssertionError(kind)


def _check_against_profile(cert: x509.Certificate, kind: CertKind, generation: Generation) -> None:
    profile = get_profile(kind, generation)
    der = cert.public_bytes(serialization.Encoding.DER)
    if profile.max_der_size:
        assert len(der) <= profile.max_der_size, f"{kind} is {len(der)} bytes"
    parsed = asn1_x509.Certificate.load(der)
    exts = {e["extn_id"].native: e for e in parsed["tbs_certificate"]["extensions"]}
    bc = exts["basic_constraints"]
    assert bc["critical"].native is True
    assert bc["extn_value"].parsed["ca"].native is profile.is_ca
    assert bc["extn_value"].parsed["path_len_constraint"].native == profile.path_length
    ku = exts["key_usage"]
    assert ku["critical"].native is True
    usages = set(ku["extn_value"].parsed.native)
    if profile.is_ca:
        assert usages == {"key_cert_sign", "crl_sign"}
    else:
        assert "digital_signature" in usages and "key_cert_sign" not in usages
    assert "key_identifier" in exts  # SKI
    if not profile.is_root:
        assert "authority_key_identifier" in exts
        aia = exts["authority_information_access"]["extn_value"].parsed.native
        methods = {a["access_method"]: a["access_location"] for a in aia}
        assert methods["ocsp"] == "http://127.0.0.1:8080/ocsp"
        assert methods["ca_issuers"].startswith("http://127.0.0.1:8080/ca/")
    subject = parsed.subject.native
    if profile.domain_component:
        assert subject["domain_component"] == profile.domain_component
    if profile.extended_key_usage:
        assert "extended_key_usage" in exts
    else:
        assert "extended_key_usage" not in exts  # ISO 15118 certificates carry no EKU
    sig = parsed["signature_algorithm"]["algorithm"].native
    if generation is Generation.ISO15118_2:
        assert sig == "sha256_ecdsa"
        assert parsed.public_key.curve[1] == "secp256r1"
    elif generation is Generation.ISO15118_20:
        assert sig in ("sha512_ecdsa", "ed448")
    # validity: notBefore backdated (clock skew), within the profile maximum
    assert cert.not_valid_before_utc < cert.not_valid_after_utc
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= profile.max_validity_days + 1
    assert cert.serial_number > 0 and cert.serial_number.bit_length() >= 64
    assert len(cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")) <= 20


def _ensure(pki: Authority, generation: Generation, alg: KeyAlgorithm) -> None:
    if generation is Generation.ISO15118_2:
        specs = iso15118_specs()
    elif generation is Generation.OCPP:
        specs = OCPP_SPECS
    else:
        specs = iso15118_specs("20" if alg is KeyAlgorithm.P521 else "448")
    create_hierarchies(pki, [HierarchyPlan(generation, specs, alg)], organization="Test", country="DE")


LEAVES = [CertKind.SECC_LEAF, CertKind.CPS_LEAF, CertKind.CONTRACT_LEAF, CertKind.OEM_PROV_LEAF]


@pytest.mark.interop
@pytest.mark.parametrize(
    ("generation", "alg"),
    [(Generation.ISO15118_2, KeyAlgorithm.P256), (Generation.ISO15118_20, KeyAlgorithm.P521),
     (Generation.ISO15118_20, KeyAlgorithm.ED448)],
)
def test_iso15118_chains_verify_and_match_profiles(authority: Authority, generation: Generation,
                                                   alg: KeyAlgorithm) -> None:
    _ensure(authority, generation, alg)
    suffix = {KeyAlgorithm.P256: "", KeyAlgorithm.P521: "20", KeyAlgorithm.ED448: "448"}[alg]
    for ca in authority.cas():
        cert = authority.ca_certificate(ca)
        _check_against_profile(cert, CertKind(ca.kind), generation)
    for kind in LEAVES:
        if alg is KeyAlgorithm.ED448:
            key: object = ed448.Ed448PrivateKey.generate()
        elif alg is KeyAlgorithm.P521:
            key = p521()
        else:
            key = p256()
        prefix = {CertKind.SECC_LEAF: "cpo", CertKind.CPS_LEAF: "cps", CertKind.CONTRACT_LEAF: "mo",
                  CertKind.OEM_PROV_LEAF: "oem"}[kind]
        issued = authority.issue_from_csr(_leaf_csr(kind, key), kind, issuer=f"{prefix}{suffix}-sub2")
        _check_against_profile(issued.certificate, kind, generation)
        root = authority.ca_certificate(authority.ca(f"{ROOT_OF[prefix]}{suffix}-root"))
        assert len(issued.chain) == 2  # Sub-CA 2, Sub-CA 1: at most 3 certificates below the root [V2G2-009]
        openssl_verify(issued.certificate, list(issued.chain), root)


@pytest.mark.interop
@pytest.mark.parametrize("key_factory", [p256, lambda: ec.generate_private_key(ec.SECP384R1()), rsa_key,
                                         lambda: rsa_key(3072)])
def test_ocpp_tls_chain_from_ec_and_rsa_csrs(authority: Authority, key_factory: object) -> None:
    _ensure(authority, Generation.OCPP, KeyAlgorithm.P256)
    root = authority.ca_certificate(authority.ca("csms-root"))
    _check_against_profile(root, CertKind.CSMS_ROOT, Generation.OCPP)
    for kind in (CertKind.STATION_CLIENT, CertKind.CSMS_SERVER):
        key = key_factory()  # type: ignore[operator]
        issued = authority.issue_from_csr(_leaf_csr(kind, key), kind)
        cert = issued.certificate
        _check_against_profile(cert, kind, Generation.OCPP)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        expected = "clientAuth" if kind is CertKind.STATION_CLIENT else "serverAuth"
        assert [u._name for u in eku] == [expected]
        openssl_verify(cert, list(issued.chain), root)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_encipherment == isinstance(key, rsa.RSAPrivateKey)
        assert ku.key_agreement == isinstance(key, ec.EllipticCurvePrivateKey)
    server = authority.issue_from_csr(_leaf_csr(CertKind.CSMS_SERVER, p256()), CertKind.CSMS_SERVER).certificate
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["csms.example.com"]


def test_every_profile_is_reachable_and_sane() -> None:
    kinds = {(p.kind, p.generation) for p in all_profiles()}
    for gen in (Generation.ISO15118_2, Generation.ISO15118_20):
        for kind in (CertKind.V2G_ROOT, CertKind.CPO_SUB1, CertKind.CPO_SUB2, CertKind.SECC_LEAF, CertKind.CPS_SUB1,
                     CertKind.CPS_SUB2, CertKind.CPS_LEAF, CertKind.MO_ROOT, CertKind.MO_SUB1, CertKind.MO_SUB2,
                     CertKind.CONTRACT_LEAF, CertKind.OEM_ROOT, CertKind.OEM_SUB1, CertKind.OEM_SUB2,
                     CertKind.OEM_PROV_LEAF):
            assert (kind, gen) in kinds
            p = get_profile(kind, gen)
            assert p.max_der_size == (800 if gen is Generation.ISO15118_2 else 1600)
            if p.is_ca and not p.is_root:
                assert p.path_length in (0, 1)


def test_oversize_certificate_is_refused_before_signing(pki: Authority) -> None:
    from pki.errors import SizeLimitExceeded
    from pki.store import repo

    before = repo.count_certificates(pki.db)
    long_org = "O" * 64
    csr = make_csr(p256(), CN="DE*PNC*E12345*1", O=long_org, C="DE", DC="CPO")
    # fine on its own; pad with OUs (allowed attribute) until it cannot fit 800 bytes
    from cryptography.x509.oid import NameOID

    from tests.helpers import name
    attrs = list(name(CN="DE*PNC*E12345*1", O=long_org, C="DE", DC="CPO"))
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "U" * 64) for _ in range(5)]
    key = p256()
    from cryptography.hazmat.primitives import hashes
    big = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
    pki.issue_from_csr(csr, CertKind.SECC_LEAF)  # the normal one works
    with pytest.raises(SizeLimitExceeded, match="800-byte limit"):
        pki.issue_from_csr(big.public_bytes(serialization.Encoding.PEM), CertKind.SECC_LEAF)
    assert repo.count_certificates(pki.db) == before + 1  # nothing reserved for the refused one


def test_every_ca_of_the_hierarchies_has_a_distinct_name() -> None:
    """RFC 5280 name chaining: two CAs with one DN (e.g. the -2 and the -20 V2G root) make relying parties that
    look issuers up by name pick the wrong one."""
    from pki.hierarchy import ca_subject, default_plans

    plans = [*default_plans(with_iso15118_20=True),
             HierarchyPlan(Generation.ISO15118_20, iso15118_specs("448"), KeyAlgorithm.ED448)]
    subjects = [ca_subject(spec, organization="Test", country="DE", generation=plan.generation).rfc4514_string()
                for plan in plans for spec in plan.specs]
    assert len(subjects) == len(set(subjects)), sorted(s for s in subjects if subjects.count(s) > 1)
