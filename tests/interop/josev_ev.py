# ruff: noqa: E402 - stdout must be redirected before Josev configures its logging
"""Josev (the `iso15118` package) acting as the EV — runs INSIDE the Josev venv (tests/interop/setup_josev.sh).

It uses only Josev's own code: its pydantic message models, its EXIficient-based EXI codec and
``iso15118.shared.security`` (create_signature, verify_signature incl. verify_certs, decrypt_priv_key), exactly
as Josev's EVCC states ``PaymentServiceSelection`` (building CertificateInstallationReq) and
``CertificateInstallation`` (processing the Res) do.

    python josev_ev.py serve     # one JSON command per stdin line, one JSON answer per stdout line:
      {"cmd": "request", "args": [OEM_KEY.pem, OEM_CERT.der, V2G_ROOT.der, SESSION_HEX]} -> {"exi": base64}
      {"cmd": "response", "args": [OEM_KEY.pem, V2G_ROOT.der], "exi": base64}           -> {... see response()}

One process (one JVM) serves a whole test module: starting EXIficient costs seconds on a loaded machine.
"""

from __future__ import annotations

import base64
import json
import sys

RESULT = sys.stdout
sys.stdout = sys.stderr  # Josev logs to stdout; keep our result channel clean

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import load_der_x509_certificate
from iso15118.shared.exi_codec import EXI
from iso15118.shared.exificient_exi_codec import ExificientEXICodec
from iso15118.shared.messages.enums import Namespace
from iso15118.shared.messages.iso15118_2.body import Body, CertificateInstallationReq
from iso15118.shared.messages.iso15118_2.datatypes import RootCertificateIDList
from iso15118.shared.messages.iso15118_2.header import MessageHeader
from iso15118.shared.messages.iso15118_2.msgdef import V2GMessage
from iso15118.shared.messages.xmldsig import X509IssuerSerial
from iso15118.shared.security import (
    create_signature,
    decrypt_priv_key,
    get_cert_cn,
    to_ec_pub_key,
    verify_signature,
)
from iso15118.shared.settings import SettingKey, shared_settings


def request(oem_key_path: str, oem_cert_path: str, root_path: str, session_hex: str) -> dict[str, object]:
    oem_key = load_pem_private_key(open(oem_key_path, "rb").read(), None)
    root = load_der_x509_certificate(open(root_path, "rb").read())
    req = CertificateInstallationReq(
        id="id1",
        oem_provisioning_cert=open(oem_cert_path, "rb").read(),
        list_of_root_cert_ids=RootCertificateIDList(x509_issuer_serials=[
            X509IssuerSerial(x509_issuer_name=root.issuer.__str__(), x509_serial_number=root.serial_number)]),
    )
    signature = create_signature([(req.id, EXI().to_exi(req, Namespace.ISO_V2_MSG_DEF))], oem_key)
    msg = V2GMessage(header=MessageHeader(session_id=session_hex, signature=signature),
                     body=Body(certificate_installation_req=req))
    return {"exi": base64.b64encode(EXI().to_exi(msg, Namespace.ISO_V2_MSG_DEF)).decode()}


def response(oem_key_path: str, root_path: str, exi_b64: str) -> dict[str, object]:
    oem_key = load_pem_private_key(open(oem_key_path, "rb").read(), None)
    exi = base64.b64decode(exi_b64)
    msg = EXI().from_exi(exi, Namespace.ISO_V2_MSG_DEF)
    res = msg.body.certificate_installation_res
    ok = verify_signature(
        signature=msg.header.signature,
        elements_to_sign=[
            (res.contract_cert_chain.id, EXI().to_exi(res.contract_cert_chain, Namespace.ISO_V2_MSG_DEF)),
            (res.encrypted_private_key.id, EXI().to_exi(res.encrypted_private_key, Namespace.ISO_V2_MSG_DEF)),
            (res.dh_public_key.id, EXI().to_exi(res.dh_public_key, Namespace.ISO_V2_MSG_DEF)),
            (res.emaid.id, EXI().to_exi(res.emaid, Namespace.ISO_V2_MSG_DEF)),
        ],
        leaf_cert=res.cps_cert_chain.certificate,
        sub_ca_certs=res.cps_cert_chain.sub_certificates.certificates,
        root_ca_cert=open(root_path, "rb").read(),
    )
    key = decrypt_priv_key(encrypted_priv_key_with_iv=res.encrypted_private_key.value, ecdh_priv_key=oem_key,
                           ecdh_pub_key=to_ec_pub_key(res.dh_public_key.value))
    return {
        "signature_ok": ok,
        "response_code": str(res.response_code.value if hasattr(res.response_code, "value") else res.response_code),
        "session_id": msg.header.session_id,
        "emaid": res.emaid.value,
        "contract_cn": get_cert_cn(res.contract_cert_chain.certificate),
        "contract_cert": base64.b64encode(res.contract_cert_chain.certificate).decode(),
        "private_key_hex": key.hex(),
    }


if __name__ == "__main__":
    shared_settings.update({SettingKey.MESSAGE_LOG_JSON: False, SettingKey.MESSAGE_LOG_EXI: False})
    EXI().set_exi_codec(ExificientEXICodec())
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "request":
                answer = request(*command["args"])
            else:
                answer = response(*command["args"], command["exi"])
        except Exception as exc:  # report, keep serving
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        RESULT.write(json.dumps(answer) + "\n")
        RESULT.flush()
