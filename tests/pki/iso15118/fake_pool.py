"""A fake Hubject OPCP server (token endpoint, CCP signedContractData, EST simpleenroll/cacerts) on a free port.

It follows the published OpenAPI descriptions (hubject/opcp OPCP-1.0.0/reference/{accessToken,ccp,est}.v1.json):
JSON token request with client_id/client_secret/audience/grant_type; CCPResponse.emaidContent[].messageDef;
{errorMessages, traceId} errors; EST bodies as base64 DER PKCS#10 in and base64 PKCS#7 certs-only out.
Scripted failures (``fail_next``) let tests drive retries and token refresh.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass
class PoolState:
    client_id: str = "cpo-client"
    client_secret: str = "s3cret"
    tokens: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses to return before serving normally
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    contracts: dict[str, str] = field(default_factory=dict)  # exi request b64 -> exi response b64
    revoke_tokens: bool = False


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Fake CPO Sub2")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    return key, cert


def build_app(state: PoolState) -> FastAPI:
    app = FastAPI()
    ca_key, ca_cert = _ca()

    def authorised(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in state.tokens and not state.revoke_tokens

    async def scripted(request: Request) -> Response | None:
        state.requests.append((request.method, request.url.path, dict(request.headers), await request.body()))
        if state.fail_next:
            return JSONResponse({"errorMessages": ["scripted"], "traceId": "t"}, status_code=state.fail_next.pop(0))
        return None

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        if (body.get("grant_type") != "client_credentials" or body.get("client_id") != state.client_id
                or body.get("client_secret") != state.client_secret or not body.get("audience")):
            return JSONResponse({"error": "access_denied", "error_description": "bad client"}, status_code=401)
        tok = f"tok-{len(state.tokens) + 1}"
        state.tokens.append(tok)
        state.revoke_tokens = False
        return JSONResponse({"access_token": tok, "scope": "ccpservice", "expires_in": 86400, "token_type": "Bearer"})

    @app.post("/v1/ccp/signedContractData")
    async def signed_contract_data(request: Request) -> Response:
        if (r := await scripted(request)) is not None:
            return r
        if not authorised(request):
            return Response(status_code=401)
        body = await request.json()
        if set(body) - {"certificateInstallationReq", "xsdMsgDefNamespace"} or \
                body.get("xsdMsgDefNamespace") not in ("urn:iso:15118:2:2013:MsgDef", "urn:iso:15118:20:2020:MsgDef",
                                                       "urn:iso:std:iso:15118:-20:CommonMessages"):
            return JSONResponse({"errorMessages": ["EXI format is invalid!"], "traceId": "x"}, status_code=400)
        res = state.contracts.get(body["certificateInstallationReq"])
        if res is None:
            if request.headers.get("alwaysreturnexi") == "true":
                return JSONResponse({"CCPResponse": {"emaidContent": [{"messageDef": {
                    "certificateInstallationRes": "TkVHQVRJVkU="}}]}}, status_code=404)
            return JSONResponse({"errorMessages": ["Contract or Vehicle not found."], "traceId": "y"}, status_code=404)
        return JSONResponse({"CCPResponse": {"emaidContent": [{"messageDef": {
            "metaData": "string", "certificateInstallationRes": res, "emaid": "DEHUB000000001"}}]}})

    @app.post("/.well-known/est/{ca}/simpleenroll/{iso}")
    async def simpleenroll(ca: str, iso: str, request: Request) -> Response:
        if (r := await scripted(request)) is not None:
            return r
        if not authorised(request):
            return Response(status_code=401)
        if request.headers.get("content-type") != "application/pkcs10" or iso not in ("ISO15118-2", "ISO15118-20"):
            return Response(status_code=400)
        try:
            csr = x509.load_der_x509_csr(base64.b64decode(await request.body(), validate=True))
        except ValueError:
            return Response(status_code=400)
        now = dt.datetime.now(dt.UTC)
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=10))
                .sign(ca_key, hashes.SHA256()))
        p7 = pkcs7.serialize_certificates([ca_cert, leaf], serialization.Encoding.DER)
        return Response(base64.b64encode(p7), media_type="application/pkcs7-mime; smime-type=certs-only")

    @app.get("/{ca}/cacerts/{iso}/{alg}/")
    async def cacerts(ca: str, iso: str, alg: str, request: Request) -> Response:
        if (r := await scripted(request)) is not None:
            return r
        if not authorised(request):
            return Response(status_code=401)
        p7 = pkcs7.serialize_certificates([ca_cert], serialization.Encoding.DER)
        return Response(base64.b64encode(p7), media_type="application/pkcs7-mime; smime-type=certs-only")

    app.state.ca_cert = ca_cert
    return app


class FakePool:
    def __init__(self) -> None:
        self.state = PoolState()
        self.app = build_app(self.state)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakePool:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake pool did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
