"""An EV for tests, written from the standard's recipe with primitives (not with pki.iso15118.xmldsig/keywrap)."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.pki.iso15118.fake_codec import FakeCodec

NS2 = "urn:iso:15118:2:2013:MsgDef"
C14N = "http://www.w3.org/TR/canonical-exi/"


def concat_kdf_sha256(z: bytes, length: int, other_info: bytes) -> bytes:
    out, counter = b"", 1
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(4, "big") + z + other_info).digest()
        counter += 1
    return out[:length]


def ev_signature(codec: FakeCodec, key: ec.EllipticCurvePrivateKey, refs: list[tuple[str, str, Any]]) -> dict[str, Any]:
    si = {
        "CanonicalizationMethod": {"Algorithm": C14N},
        "SignatureMethod": {"Algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
        "Reference": [{"URI": f"#{i}", "Transforms": {"Transform": [{"Algorithm": C14N}]},
                       "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
                       "DigestValue": hashlib.sha256(codec.encode_fragment(name, tree, NS2)).digest()}
                      for i, name, tree in refs],
    }
    r, s = decode_dss_signature(key.sign(codec.encode_signed_info(si), ec.ECDSA(hashes.SHA256())))
    return {"SignedInfo": si, "SignatureValue": {"value": r.to_bytes(32, "big") + s.to_bytes(32, "big")}}


def root_id(cert: x509.Certificate) -> dict[str, Any]:
    """Josev writes the issuer as Python's repr of the Name object (practical-notes)."""
    return {"X509IssuerName": repr(cert.issuer), "X509SerialNumber": cert.serial_number}


def install_request(codec: FakeCodec, oem_key: ec.EllipticCurvePrivateKey, oem_cert: x509.Certificate,
                    roots: list[x509.Certificate], session: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08") -> bytes:
    body = {"Id": "id1", "OEMProvisioningCert": oem_cert.public_bytes(serialization.Encoding.DER),
            "ListOfRootCertificateIDs": {"RootCertificateID": [root_id(r) for r in roots]}}
    sig = ev_signature(codec, oem_key, [("id1", "CertificateInstallationReq", body)])
    msg = {"V2G_Message": {"Header": {"SessionID": session, "Signature": sig},
                           "Body": {"CertificateInstallationReq": body}}}
    return codec.encode_message(msg, NS2)


def update_request(codec: FakeCodec, contract_key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate],
                   emaid: str, roots: list[x509.Certificate], session: bytes = b"\x09" * 8) -> bytes:
    der = serialization.Encoding.DER
    body = {"Id": "id1", "ContractSignatureCertChain": {"Certificate": chain[0].public_bytes(der),
                                                        "SubCertificates": {"Certificate": [c.public_bytes(der)
                                                                                            for c in chain[1:]]}},
            "eMAID": emaid, "ListOfRootCertificateIDs": {"RootCertificateID": [root_id(r) for r in roots]}}
    sig = ev_signature(codec, contract_key, [("id1", "CertificateUpdateReq", body)])
    msg = {"V2G_Message": {"Header": {"SessionID": session, "Signature": sig}, "Body": {"CertificateUpdateReq": body}}}
    return codec.encode_message(msg, NS2)


def check_response(codec: FakeCodec, exi: bytes, name: str, oem_or_contract_key: ec.EllipticCurvePrivateKey
                   ) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey, list[x509.Certificate], list[x509.Certificate]]:
    """What an EV does with a -2 CertificateInstallationRes/UpdateRes; returns (body, key, contract chain, cps chain)."""
    msg = codec.decode_message(exi, NS2)["V2G_Message"]
    body = msg["Body"][name]
    assert body["ResponseCode"] == "OK"

    def chain(t: dict[str, Any]) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(d) for d in [t["Certificate"], *t.get("SubCertificates", {})
                                                             .get("Certificate", [])]]

    cps = chain(body["SAProvisioningCertificateChain"])
    contract = chain(body["ContractSignatureCertChain"])
    sig = msg["Header"]["Signature"]
    refs = {r["URI"]: r["DigestValue"] for r in sig["SignedInfo"]["Reference"]}
    for el in ("ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID"):
        tree = body[el]
        assert refs[f"#{tree['Id']}"] == hashlib.sha256(codec.encode_fragment(el, tree, NS2)).digest(), el
    raw = sig["SignatureValue"]["value"]
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    cps_key = cps[0].public_key()
    assert isinstance(cps_key, ec.EllipticCurvePublicKey)
    cps_key.verify(der, codec.encode_signed_info(sig["SignedInfo"]), ec.ECDSA(hashes.SHA256()))
    enc = body["ContractSignatureEncryptedPrivateKey"]["value"]
    dh = body["DHpublickey"]["value"]
    assert len(enc) == 48 and len(dh) == 65
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh)
    kek = concat_kdf_sha256(oem_or_contract_key.exchange(ec.ECDH(), peer), 16, b"\x01\x55\x56")
    dec = Cipher(algorithms.AES(kek), modes.CBC(enc[:16])).decryptor()
    key = ec.derive_private_key(int.from_bytes(dec.update(enc[16:]) + dec.finalize(), "big"), ec.SECP256R1())
    assert key.public_key() == contract[0].public_key()
    return body, key, contract, cps


NS20 = "urn:iso:std:iso:15118:-20:CommonMessages"


def ev_signature_20(codec: FakeCodec, key: Any, name: str, tree: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ed448

    ed = isinstance(key, ed448.Ed448PrivateKey)
    si = {
        "CanonicalizationMethod": {"Algorithm": C14N},
        "SignatureMethod": {"Algorithm": "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448" if ed
                            else "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"},
        "Reference": [{"URI": f"#{tree['Id']}", "Transforms": {"Transform": [{"Algorithm": C14N}]},
                       "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha512"},
                       "DigestValue": hashlib.sha512(codec.encode_fragment(name, tree, NS20)).digest()}],
    }
    data = codec.encode_signed_info(si)
    if ed:
        value = key.sign(data)
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA512())))
        value = r.to_bytes(66, "big") + s.to_bytes(66, "big")
    return {"SignedInfo": si, "SignatureValue": {"value": value}}


def install_request_20(codec: FakeCodec, oem_key: Any, chain: list[x509.Certificate], roots: list[x509.Certificate],
                       max_chains: int = 1, emaids: tuple[str, ...] = ()) -> bytes:
    der = serialization.Encoding.DER
    oem = {"Id": "id1", "Certificate": chain[0].public_bytes(der),
           "SubCertificates": {"Certificate": [c.public_bytes(der) for c in chain[1:]]}}
    req: dict[str, Any] = {
        "Header": {"SessionID": b"\x20" * 8, "TimeStamp": 1_800_000_000,
                   "Signature": ev_signature_20(codec, oem_key, "OEMProvisioningCertificateChain", oem)},
        "OEMProvisioningCertificateChain": oem,
        "ListOfRootCertificateIDs": {"RootCertificateID": [root_id(r) for r in roots]},
        "MaximumContractCertificateChains": max_chains,
    }
    if emaids:
        req["PrioritizedEMAIDs"] = {"EMAID": list(emaids)}
    return codec.encode_message({"CertificateInstallationReq": req}, NS20)


def check_response_20(codec: FakeCodec, exi: bytes, oem_key: Any, pcid: str) -> tuple[dict[str, Any], Any]:
    from cryptography.hazmat.primitives.asymmetric import ed448, x448
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    res = codec.decode_message(exi, NS20)["CertificateInstallationRes"]
    assert res["ResponseCode"] == "OK" and res["EVSEProcessing"] == "Finished"
    data = res["SignedInstallationData"]
    sig = res["Header"]["Signature"]
    [ref] = sig["SignedInfo"]["Reference"]
    assert ref["URI"] == f"#{data['Id']}"
    assert ref["DigestValue"] == hashlib.sha512(codec.encode_fragment("SignedInstallationData", data, NS20)).digest()
    cps = x509.load_der_x509_certificate(res["CPSCertificateChain"]["Certificate"])
    raw = sig["SignatureValue"]["value"]
    cps_key = cps.public_key()
    assert isinstance(cps_key, ec.EllipticCurvePublicKey) and len(raw) == 132
    der = encode_dss_signature(int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big"))
    cps_key.verify(der, codec.encode_signed_info(sig["SignedInfo"]), ec.ECDSA(hashes.SHA512()))
    leaf = x509.load_der_x509_certificate(data["ContractCertificateChain"]["Certificate"])
    assert data["ContractCertificateChain"]["SubCertificates"]["Certificate"]  # mandatory in -20
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aad = pcid.upper().encode() + ski.hex().upper().encode()
    if data["ECDHCurve"] == "SECP521":
        blob = data["SECP521_EncryptedPrivateKey"]
        assert len(blob) == 94 and len(data["DHPublicKey"]) == 133
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), data["DHPublicKey"])
        z = oem_key.exchange(ec.ECDH(), peer)
        plain = AESGCM(concat_kdf_sha256(z, 32, b"\x01\x55\x56")).decrypt(blob[:12], blob[12:], aad)
        key: Any = ec.derive_private_key(int.from_bytes(plain, "big"), ec.SECP521R1())
    else:
        blob = data["X448_EncryptedPrivateKey"]
        assert len(blob) == 84 and len(data["DHPublicKey"]) == 56
        seed = oem_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        h = hashlib.shake_256(seed).digest(114)[:56]  # RFC 8032 secret scalar bytes = X448 private key
        z = x448.X448PrivateKey.from_private_bytes(h).exchange(x448.X448PublicKey.from_public_bytes(data["DHPublicKey"]))
        plain = AESGCM(concat_kdf_sha256(z, 32, b"\x01\x55\x56")).decrypt(blob[:12], blob[12:], aad)
        key = ed448.Ed448PrivateKey.from_private_bytes(plain + b"\x00")
    assert key.public_key() == leaf.public_key()
    return res, key
