"""Codec tests that need no Java: golden EXIficient digests, round trips, models, API, generator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pki.iso15118 import exi
from pki.iso15118.exi import (
    NS_ISO2,
    NS_ISO20,
    NS_XMLDSIG,
    CertificateChain,
    CertificateInstallationReq,
    CertificateInstallationRes,
    CertificateUpdateRes,
    Emaid,
    ExiValidationError,
    IdBytes,
    Reference,
    Signature,
    SignedInfo,
    V2GMessage,
    X509IssuerSerial,
    codec,
    generate,
)
from tests.pki.iso15118.exi.corpus import cases

CASES = cases()
# sha256 of EXIficient's encoding of every corpus case, recorded from the oracle (tests/oracle/):
# keeps byte-exactness checked on machines without Java.
GOLDEN: dict[str, str] = json.loads((Path(__file__).parent / "exificient_digests.json").read_text())
_G = {NS_ISO2: "iso2", NS_ISO20: "iso20", NS_XMLDSIG: "xmldsig"}


def _enc(kind: str, ns: str, tree: Any) -> bytes:
    if kind == "doc":
        return exi.encode_message(tree, ns)
    return codec.encode_fragment(codec.grammars(_G[ns]), list(tree.items()))


@pytest.mark.parametrize(("cid", "kind", "ns", "tree"), CASES, ids=[c[0] for c in CASES])
def test_corpus_matches_recorded_exificient_bytes(cid: str, kind: str, ns: str, tree: Any) -> None:
    data = _enc(kind, ns, tree)
    assert hashlib.sha256(data).hexdigest() == GOLDEN[cid]
    back = exi.decode_message(data, ns) if kind == "doc" else dict(exi.decode_fragment(data, ns))
    assert back == tree
    assert _enc(kind, ns, back) == data


def test_known_vector_from_exificient() -> None:
    # EXIficient output for a small CertificateInstallationReq (recorded with the oracle)
    tree = {
        "V2G_Message": {
            "Header": {"SessionID": bytes.fromhex("C08CDF36985A7190")},
            "Body": {
                "CertificateInstallationReq": {
                    "Id": "id1",
                    "OEMProvisioningCert": b"\x00\x01\x02",
                    "ListOfRootCertificateIDs": {
                        "RootCertificateID": [{"X509IssuerName": "CN=a", "X509SerialNumber": 5}]
                    },
                }
            },
        }
    }
    ref = bytes.fromhex("809802302337cda6169c6410502b4b218806000204006434e3d6100510")
    assert exi.encode_message(tree, NS_ISO2) == ref
    assert exi.decode_message(ref, NS_ISO2) == tree


def _res() -> CertificateInstallationRes:
    return CertificateInstallationRes(
        response_code="OK",
        sa_provisioning_certificate_chain=CertificateChain(b"\x30" * 500, (b"\x31" * 450,)),
        contract_signature_cert_chain=CertificateChain(
            b"\x30" * 600, (b"\x32" * 400, b"\x33" * 400), id="id1"
        ),
        contract_signature_encrypted_private_key=IdBytes("id2", b"\x01" * 48),
        dh_public_key=IdBytes("id3", b"\x04" + b"\x02" * 64),
        emaid=Emaid("id4", "DEPNC0000000011"),
    )


def test_models_sign_and_round_trip() -> None:
    res = _res()
    refs = (
        Reference(
            "#id1",
            exi.fragment_digest("ContractSignatureCertChain", res.contract_signature_cert_chain, NS_ISO2),
        ),
        Reference(
            "#id2",
            exi.fragment_digest(
                "ContractSignatureEncryptedPrivateKey", res.contract_signature_encrypted_private_key, NS_ISO2
            ),
        ),
        Reference("#id3", exi.fragment_digest("DHpublickey", res.dh_public_key, NS_ISO2)),
        Reference("#id4", exi.fragment_digest("eMAID", res.emaid, NS_ISO2)),
    )
    si = SignedInfo(refs)
    assert exi.decode_fragment(exi.encode_signed_info(si), NS_XMLDSIG) == [("SignedInfo", si.to_tree())]
    msg = V2GMessage(b"\x01" * 8, res, Signature(si, b"\x05" * 64))
    data = exi.encode_message(msg, NS_ISO2)
    assert exi.decode_model(data, NS_ISO2) == msg
    upd = CertificateUpdateRes(**{k: getattr(res, k) for k in res.__dataclass_fields__}, retry_counter=-1)
    data = exi.encode_message(V2GMessage(b"\x01" * 8, upd), NS_ISO2)
    assert exi.decode_model(data, NS_ISO2).body == upd


def test_emaid_fragment_uses_element_fragment_grammar() -> None:
    # eMAID is declared twice with different types in the -2 schema → relaxed grammar (§8.5.3):
    # 9-bit start-tag codes with AT({MsgDataTypes}Id) at code 4 (recorded from EXIficient).
    data = exi.encode_fragment("eMAID", {"Id": "a", "value": "D"}, NS_ISO2)
    assert data.hex() == "80ec0201b0c000d13d3d00"
    assert exi.decode_fragment(data, NS_ISO2) == [("eMAID", {"Id": "a", "value": "D"})]


@pytest.mark.parametrize(
    "build",
    [
        lambda: CertificateChain(b"x" * 801),
        lambda: CertificateChain(b"x", (b"y",) * 5),
        lambda: Emaid("id4", "DE123"),
        lambda: (
            IdBytes("id2", b"x" * 47)
            and CertificateInstallationRes(
                "OK",
                CertificateChain(b"x"),
                CertificateChain(b"x", id="id1"),
                IdBytes("id2", b"x" * 47),
                IdBytes("id3", b"x" * 65),
                Emaid("id4", "DE1234567890AB"),
            )
        ),
        lambda: CertificateInstallationReq("id1", b"x", ()),
        lambda: CertificateInstallationReq("id1", b"x", (X509IssuerSerial("CN=r", 1),) * 21),
        lambda: exi.chain20(b"x" * 1601),
        lambda: SignedInfo(()),
    ],
)
def test_model_facets_are_enforced(build: Any) -> None:
    with pytest.raises(ExiValidationError):
        build()


def test_chain20_allows_1600_bytes() -> None:
    assert len(exi.chain20(b"x" * 1600, (b"y",) * 3).certificate) == 1600


def test_generated_tables_are_up_to_date() -> None:
    """The committed tables are exactly what generate.py derives from the vendored XSDs."""
    here = Path(generate.__file__).parent
    for name in generate.SCHEMA_ROOTS:
        assert (here / f"_tables_{name}.py").read_text() == generate.render(name), (
            f"run python -m pki.iso15118.exi.generate ({name})"
        )


def _installation_res_20(curve: str, dh_len: int, key: str, key_len: int) -> dict[str, Any]:
    chain = {"Certificate": b"\x30" * 300, "SubCertificates": {"Certificate": [b"\x31" * 200]}}
    return {"CertificateInstallationRes": {
        "Header": {"SessionID": b"\x20" * 8, "TimeStamp": 1_700_000_000},
        "ResponseCode": "OK", "EVSEProcessing": "Finished", "CPSCertificateChain": chain,
        "SignedInstallationData": {"Id": "id1", "ContractCertificateChain": chain, "ECDHCurve": curve,
                                   "DHPublicKey": b"\x04" * dh_len, key: b"\x05" * key_len},
        "RemainingContractCertificateChains": 0}}


@pytest.mark.parametrize(("curve", "dh_len", "key", "key_len"), [
    ("X448", 56, "X448_EncryptedPrivateKey", 84),  # [V2G20-2495]: the 56-byte key, no padding
    ("SECP521", 133, "SECP521_EncryptedPrivateKey", 94),
    ("SECP521", 133, "TPM_EncryptedPrivateKey", 150),  # [V2G20-2521]: at most 206, no padding
])
def test_iso20_dh_public_key_sizes_the_standard_requires_encode(curve: str, dh_len: int, key: str,
                                                                key_len: int) -> None:
    tree = _installation_res_20(curve, dh_len, key, key_len)
    data = exi.encode_message(tree, NS_ISO20)
    assert exi.decode_message(data, NS_ISO20) == tree


@pytest.mark.parametrize(("dh_len", "key", "key_len"), [
    (55, "X448_EncryptedPrivateKey", 84), (134, "SECP521_EncryptedPrivateKey", 94),
    (133, "TPM_EncryptedPrivateKey", 207), (133, "X448_EncryptedPrivateKey", 83)])
def test_iso20_codec_refuses_sizes_outside_the_facets(dh_len: int, key: str, key_len: int) -> None:
    with pytest.raises(exi.ExiError, match="outside the schema facets"):
        exi.encode_message(_installation_res_20("X448", dh_len, key, key_len), NS_ISO20)


def test_iso20_model_checks_the_dh_key_size_per_curve() -> None:
    chain = CertificateChain(b"\x30" * 10, (b"\x31" * 10,), max_cert=1600, max_subs=3)
    exi.SignedInstallationData("id1", chain, "X448", b"\x04" * 56, b"\x05" * 84, "X448_EncryptedPrivateKey")
    exi.SignedInstallationData("id1", chain, "SECP521", b"\x04" * 133, b"\x05" * 94)
    with pytest.raises(ExiValidationError, match="DHPublicKey"):  # a padded X448 key is refused
        exi.SignedInstallationData("id1", chain, "X448", b"\x04" * 133, b"\x05" * 84, "X448_EncryptedPrivateKey")
    with pytest.raises(ExiValidationError, match="DHPublicKey"):
        exi.SignedInstallationData("id1", chain, "SECP521", b"\x04" * 56, b"\x05" * 94)
    with pytest.raises(ExiValidationError, match="does not go with"):
        exi.SignedInstallationData("id1", chain, "SECP521", b"\x04" * 133, b"\x05" * 84, "X448_EncryptedPrivateKey")
