"""OCSP for OCPP hash data: what a CSMS sends for GetCertificateStatus (M06) and Authorize (C07)."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from cryptography.x509 import ocsp
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.deps import Actor, ServicesDep, require
from pki.hashdata import CertificateHashData

router = APIRouter(prefix="/api/v1/ocsp", tags=["ocsp"])
Csms = Annotated[Actor, Depends(require("csms", "operator"))]


class HashDataIn(BaseModel):
    """OCPP CertificateHashDataType: hex hashes and serial (case-insensitive, serial without leading zeros)."""

    hashAlgorithm: Literal["SHA256", "SHA384", "SHA512"]
    issuerNameHash: str = Field(max_length=128)
    issuerKeyHash: str = Field(max_length=128)
    serialNumber: str = Field(max_length=40)


class OcspResultOut(BaseModel):
    ocspResult: str = Field(description="base64 DER OCSPResponse, as GetCertificateStatusResponse.ocspResult")
    responseStatus: str = Field(description="successful, unauthorized, tryLater, ...")
    certStatus: str | None = Field(description="good, revoked or unknown when successful")


_STATUS = {ocsp.OCSPResponseStatus.SUCCESSFUL: "successful", ocsp.OCSPResponseStatus.MALFORMED_REQUEST:
           "malformedRequest", ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalError",
           ocsp.OCSPResponseStatus.TRY_LATER: "tryLater", ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
           ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized"}


@router.post("/hash-data", response_model=OcspResultOut, summary="OCSP response for OCPP CertificateHashData")
def hash_data(body: HashDataIn, services: ServicesDep, _: Csms) -> OcspResultOut:
    data = CertificateHashData.from_ocpp(body.model_dump())
    answer = services.ocsp.status_of_hash_data(data)
    status = _STATUS[ocsp.load_der_ocsp_response(answer.der).response_status]
    return OcspResultOut(ocspResult=base64.b64encode(answer.der).decode(), responseStatus=status,
                         certStatus=answer.cert_status if answer.successful else None)
