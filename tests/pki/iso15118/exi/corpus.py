"""Deterministic corpus of ISO 15118 documents and fragments for the codec and oracle tests.

Every case is ``(id, kind, schema, tree)`` with kind ``"doc"`` or ``"frag"``; trees use the codec's
Josev-JSON shape (bytes for binary values).  Field values vary on purpose: minimum and maximum
lengths, optional elements present and absent, list lengths 1..max, -2 and -20.
"""

from __future__ import annotations

import random
from typing import Any

NS2 = "urn:iso:15118:2:2013:MsgDef"
NS20 = "urn:iso:std:iso:15118:-20:CommonMessages"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

C14N = "http://www.w3.org/TR/canonical-exi/"
ECDSA = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def _b(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def signed_info(rng: random.Random, ids: list[str], with_transforms: bool = True) -> dict[str, Any]:
    refs = []
    for i in ids:
        ref: dict[str, Any] = {
            "URI": f"#{i}",
            "DigestMethod": {"Algorithm": SHA256},
            "DigestValue": _b(rng, 32),
        }
        if with_transforms:
            ref["Transforms"] = {"Transform": [{"Algorithm": C14N}]}
        refs.append(ref)
    return {
        "CanonicalizationMethod": {"Algorithm": C14N},
        "SignatureMethod": {"Algorithm": ECDSA},
        "Reference": refs,
    }


def signature(rng: random.Random, ids: list[str], with_transforms: bool = True) -> dict[str, Any]:
    return {"SignedInfo": signed_info(rng, ids, with_transforms), "SignatureValue": {"value": _b(rng, 64)}}


def root_ids(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "RootCertificateID": [
            {
                "X509IssuerName": f"CN=V2G Root CA {i},O=pnc,C=DE",
                "X509SerialNumber": rng.choice([0, 1, 127, 128, 2**63, 2**159 - 1, -5, rng.getrandbits(120)]),
            }
            for i in range(n)
        ]
    }


def chain2(
    rng: random.Random, leaf: int, subs: int, sub_len: int = 400, cid: str | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"Certificate": _b(rng, leaf)}
    if subs:
        c["SubCertificates"] = {"Certificate": [_b(rng, sub_len) for _ in range(subs)]}
    if cid:
        c["Id"] = cid
    return c


def emaid(rng: random.Random) -> str:
    return "DE" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.choice([12, 13]))
    )


def cases() -> list[tuple[str, str, str, Any]]:
    rng = random.Random(15118)
    out: list[tuple[str, str, str, Any]] = []
    # ---------------------------------------------------------------- ISO 15118-2 documents
    for i in range(12):
        body = {
            "CertificateInstallationReq": {
                "Id": f"id{i}",
                "OEMProvisioningCert": _b(rng, [1, 300, 800][i % 3]),
                "ListOfRootCertificateIDs": root_ids(rng, [1, 2, 5, 20][i % 4]),
            }
        }
        hdr: dict[str, Any] = {"SessionID": _b(rng, [1, 8][i % 2])}
        if i % 3 == 1:
            hdr["Signature"] = signature(rng, [f"id{i}"], with_transforms=i % 2 == 0)
        if i % 4 == 3:
            hdr["Notification"] = {"FaultCode": "UnknownError", "FaultMsg": "x" * (i % 64)}
        out.append((f"iso2-CertInstReq-{i}", "doc", NS2, {"V2G_Message": {"Header": hdr, "Body": body}}))
    for i in range(12):
        res: dict[str, Any] = {
            "ResponseCode": ["OK", "OK_CertificateExpiresSoon", "FAILED", "FAILED_CertificateRevoked"][i % 4],
            "SAProvisioningCertificateChain": chain2(rng, [300, 800][i % 2], i % 3, 500),
            "ContractSignatureCertChain": chain2(rng, [250, 800][i % 2], [0, 1, 2, 3][i % 4], 450, cid="id1"),
            "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": _b(rng, 48)},
            "DHpublickey": {"Id": "id3", "value": _b(rng, 65)},
            "eMAID": {"Id": "id4", "value": emaid(rng)},
        }
        hdr = {"SessionID": _b(rng, 8)}
        if i % 2 == 0:
            hdr["Signature"] = signature(rng, ["id1", "id2", "id3", "id4"])
        out.append(
            (
                f"iso2-CertInstRes-{i}",
                "doc",
                NS2,
                {"V2G_Message": {"Header": hdr, "Body": {"CertificateInstallationRes": res}}},
            )
        )
    for i in range(6):
        req = {
            "Id": "id1",
            "ContractSignatureCertChain": chain2(rng, 500, i % 3, 300),
            "eMAID": emaid(rng),
            "ListOfRootCertificateIDs": root_ids(rng, 1 + i),
        }
        hdr = {"SessionID": _b(rng, 8)}
        if i % 2:
            hdr["Signature"] = signature(rng, ["id1"])
        out.append(
            (
                f"iso2-CertUpdReq-{i}",
                "doc",
                NS2,
                {"V2G_Message": {"Header": hdr, "Body": {"CertificateUpdateReq": req}}},
            )
        )
    for i in range(6):
        res = {
            "ResponseCode": ["OK", "FAILED_NoCertificateAvailable"][i % 2],
            "SAProvisioningCertificateChain": chain2(rng, 400, 1, 400),
            "ContractSignatureCertChain": chain2(rng, 400, 2, 400, cid="id1"),
            "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": _b(rng, 48)},
            "DHpublickey": {"Id": "id3", "value": _b(rng, 65)},
            "eMAID": {"Id": "id4", "value": emaid(rng)},
        }
        if i % 3:
            res["RetryCounter"] = [-1, 0, 32767, -32768, 5, 1000][i]
        hdr = {"SessionID": _b(rng, 8), "Signature": signature(rng, ["id1", "id2", "id3", "id4"])}
        out.append(
            (
                f"iso2-CertUpdRes-{i}",
                "doc",
                NS2,
                {"V2G_Message": {"Header": hdr, "Body": {"CertificateUpdateRes": res}}},
            )
        )
    # ---------------------------------------------------------------- ISO 15118-2 fragments
    for i in range(4):
        out.append(
            (
                f"iso2-frag-ContractSignatureCertChain-{i}",
                "frag",
                NS2,
                {"ContractSignatureCertChain": chain2(rng, 300 + 150 * i, i % 4, 200, cid="id1")},
            )
        )
        out.append(
            (
                f"iso2-frag-EncKey-{i}",
                "frag",
                NS2,
                {"ContractSignatureEncryptedPrivateKey": {"Id": f"id{i + 2}", "value": _b(rng, 48)}},
            )
        )
        out.append(
            (f"iso2-frag-DHpublickey-{i}", "frag", NS2, {"DHpublickey": {"Id": "id3", "value": _b(rng, 65)}})
        )
        out.append(
            (f"iso2-frag-eMAID-{i}", "frag", NS2, {"eMAID": {"Id": f"id{4 + i}", "value": emaid(rng)}})
        )
    for i in range(3):
        out.append(
            (
                f"iso2-frag-CertInstReq-{i}",
                "frag",
                NS2,
                {
                    "CertificateInstallationReq": {
                        "Id": "id1",
                        "OEMProvisioningCert": _b(rng, 200 * (i + 1)),
                        "ListOfRootCertificateIDs": root_ids(rng, i + 1),
                    }
                },
            )
        )
    for i in range(4):
        out.append(
            (
                f"xmldsig-frag-SignedInfo-{i}",
                "frag",
                DSIG,
                {"SignedInfo": signed_info(rng, [f"id{j}" for j in range(1, 2 + i)], with_transforms=True)},
            )
        )
    # ---------------------------------------------------------------- ISO 15118-20 documents
    for i in range(8):
        req: dict[str, Any] = {
            "Header": {"SessionID": _b(rng, 8), "TimeStamp": rng.getrandbits(40)},
            "OEMProvisioningCertificateChain": {
                "Id": "id1",
                "Certificate": _b(rng, [100, 1600][i % 2]),
                **(
                    {"SubCertificates": {"Certificate": [_b(rng, 300) for _ in range(i % 4)]}}
                    if i % 4
                    else {}
                ),
            },
            "ListOfRootCertificateIDs": root_ids(rng, [1, 20, 3][i % 3]),
            "MaximumContractCertificateChains": [0, 1, 255][i % 3],
        }
        if i % 2:
            req["PrioritizedEMAIDs"] = {"EMAID": [emaid(rng) for _ in range(1 + i % 8)]}
        if i % 4 == 1:
            req["Header"]["Signature"] = signature(rng, ["id1"])
        out.append((f"iso20-CertInstReq-{i}", "doc", NS20, {"CertificateInstallationReq": req}))
    for i in range(8):
        curve = ["SECP521", "X448"][i % 2]
        data: dict[str, Any] = {
            "Id": "id1",
            "ContractCertificateChain": {
                "Certificate": _b(rng, [500, 1600][i % 2]),
                "SubCertificates": {"Certificate": [_b(rng, 400) for _ in range(1 + i % 3)]},
            },
            "ECDHCurve": curve,
            "DHPublicKey": _b(rng, 133),
        }
        if i % 4 == 3:
            data["TPM_EncryptedPrivateKey"] = _b(rng, 206)
        elif curve == "SECP521":
            data["SECP521_EncryptedPrivateKey"] = _b(rng, 94)
        else:
            data["X448_EncryptedPrivateKey"] = _b(rng, 84)
        res = {
            "Header": {
                "SessionID": _b(rng, 8),
                "TimeStamp": rng.getrandbits(32),
                **({"Signature": signature(rng, ["id1"])} if i % 2 == 0 else {}),
            },
            "ResponseCode": ["OK", "WARNING_NoCertificateAvailable", "FAILED", "OK"][i % 4],
            "EVSEProcessing": ["Finished", "Ongoing", "Ongoing_WaitingForCustomerInteraction"][i % 3],
            "CPSCertificateChain": {
                "Certificate": _b(rng, 600),
                **({"SubCertificates": {"Certificate": [_b(rng, 500)]}} if i % 2 else {}),
            },
            "SignedInstallationData": data,
            "RemainingContractCertificateChains": [0, 7, 255][i % 3],
        }
        out.append((f"iso20-CertInstRes-{i}", "doc", NS20, {"CertificateInstallationRes": res}))
    for i in range(3):
        out.append(
            (
                f"iso20-frag-OEMProvChain-{i}",
                "frag",
                NS20,
                {
                    "OEMProvisioningCertificateChain": {
                        "Id": "id1",
                        "Certificate": _b(rng, 500 + 500 * i),
                        **(
                            {"SubCertificates": {"Certificate": [_b(rng, 300) for _ in range(i)]}}
                            if i
                            else {}
                        ),
                    }
                },
            )
        )
    return out
