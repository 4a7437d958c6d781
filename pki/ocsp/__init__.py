"""Local OCSP responder (RFC 6960, RFC 5019 / RFC 9919 profile): request parsing, response building, cache policy."""

from pki.ocsp.request import CertId, MalformedRequest, OcspRequest, parse_request
from pki.ocsp.response import MALFORMED, TRY_LATER, UNAUTHORIZED, ResponderIdentity
from pki.ocsp.service import PRESIGN_ALGORITHMS, CachedResponse, OcspAnswer, OcspPolicy, OcspService, RefreshStats

__all__ = [
    "MALFORMED",
    "PRESIGN_ALGORITHMS",
    "TRY_LATER",
    "UNAUTHORIZED",
    "CachedResponse",
    "CertId",
    "MalformedRequest",
    "OcspAnswer",
    "OcspPolicy",
    "OcspRequest",
    "OcspService",
    "RefreshStats",
    "ResponderIdentity",
    "parse_request",
]
