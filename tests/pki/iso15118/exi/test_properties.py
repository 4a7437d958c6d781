"""Hypothesis round trips for pnc alone (typed models → EXI → models, and re-encode identity)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pki.iso15118 import exi
from pki.iso15118.exi import (
    NS_ISO2,
    NS_ISO20,
    CertificateChain,
    CertificateInstallationReq,
    CertificateInstallationReq20,
    CertificateInstallationRes,
    CertificateInstallationRes20,
    CertificateUpdateReq,
    CertificateUpdateRes,
    Emaid,
    Header20,
    IdBytes,
    SignedInstallationData,
    V2GMessage,
    X509IssuerSerial,
)

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).map(lambda s: "i" + s)
names = st.text(max_size=40)  # any Unicode: strings are code-point sequences in EXI
roots = st.lists(st.builds(X509IssuerSerial, names, st.integers(-(2**160), 2**160)), min_size=1, max_size=20)
emaids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=14, max_size=15)


def chains(max_cert: int, max_subs: int, with_id: bool) -> st.SearchStrategy[CertificateChain]:
    return st.builds(
        CertificateChain,
        st.binary(max_size=max_cert),
        st.lists(st.binary(max_size=max_cert), max_size=max_subs).map(tuple),
        ids if with_id else st.none(),
        st.just(max_cert),
        st.just(max_subs),
    )


install_req = st.builds(CertificateInstallationReq, ids, st.binary(max_size=800), roots.map(tuple))
install_res = st.builds(
    CertificateInstallationRes,
    st.sampled_from(["OK", "OK_CertificateExpiresSoon", "FAILED", "FAILED_CertChainError"]),
    chains(800, 4, False),
    chains(800, 4, True),
    st.builds(IdBytes, ids, st.binary(min_size=48, max_size=48)),
    st.builds(IdBytes, ids, st.binary(min_size=65, max_size=65)),
    st.builds(Emaid, ids, emaids),
)
update_req = st.builds(CertificateUpdateReq, ids, chains(800, 4, False), emaids, roots.map(tuple))
update_res = st.builds(
    CertificateUpdateRes,
    st.sampled_from(["OK", "FAILED_ContractCanceled"]),
    chains(800, 4, False),
    chains(800, 4, True),
    st.builds(IdBytes, ids, st.binary(min_size=48, max_size=48)),
    st.builds(IdBytes, ids, st.binary(min_size=65, max_size=65)),
    st.builds(Emaid, ids, emaids),
    st.one_of(st.none(), st.integers(-32768, 32767)),
)
v2g = st.builds(
    V2GMessage, st.binary(max_size=8), st.one_of(install_req, install_res, update_req, update_res)
)


@settings(max_examples=60, deadline=None)
@given(v2g)
def test_iso2_round_trip(msg: V2GMessage) -> None:
    data = exi.encode_message(msg, NS_ISO2)
    back = exi.decode_model(data, NS_ISO2)
    assert back == msg
    assert exi.encode_message(back, NS_ISO2) == data


header20 = st.builds(Header20, st.binary(min_size=8, max_size=8), st.integers(0, 2**64 - 1))
req20 = st.builds(
    CertificateInstallationReq20,
    header20,
    chains(1600, 3, True),
    roots.map(tuple),
    st.integers(0, 255),
    st.lists(st.text(alphabet="ABCDEF0123456789", min_size=1, max_size=20), max_size=8).map(tuple),
)
contract_chains20 = st.builds(
    CertificateChain,
    st.binary(max_size=1600),
    st.lists(st.binary(max_size=900), min_size=1, max_size=3).map(tuple),
    st.none(),
    st.just(1600),
    st.just(3),
)
# (curve, private-key element, encrypted key length, DHPublicKey length):
# SECP521 public points are 133 bytes uncompressed, X448 keys 56 bytes [V2G20-2495].
KEY_KINDS = [
    ("SECP521", "SECP521_EncryptedPrivateKey", 94, 133),
    ("X448", "X448_EncryptedPrivateKey", 84, 56),
    ("SECP521", "TPM_EncryptedPrivateKey", 206, 133),
]
sid = st.sampled_from(KEY_KINDS).flatmap(
    lambda k: st.builds(
        SignedInstallationData,
        ids,
        contract_chains20,
        st.just(k[0]),
        st.binary(min_size=k[3], max_size=k[3]),
        st.binary(min_size=k[2], max_size=k[2]),
        st.just(k[1]),
    )
)
res20 = st.builds(
    CertificateInstallationRes20,
    header20,
    st.sampled_from(["OK", "FAILED"]),
    st.sampled_from(["Finished", "Ongoing"]),
    chains(1600, 3, False),
    sid,
    st.integers(0, 255),
)


@settings(max_examples=40, deadline=None)
@given(st.one_of(req20, res20))
def test_iso20_round_trip(msg: CertificateInstallationReq20 | CertificateInstallationRes20) -> None:
    data = exi.encode_message(msg, NS_ISO20)
    back = exi.decode_model(data, NS_ISO20)
    assert back == msg
    assert exi.encode_message(back, NS_ISO20) == data


@settings(max_examples=60, deadline=None)
@given(st.builds(Emaid, ids, emaids))
def test_emaid_fragment_round_trip(e: Emaid) -> None:
    data = exi.encode_fragment("eMAID", e, NS_ISO2)
    assert exi.decode_fragment(data, NS_ISO2) == [("eMAID", e.to_tree())]
