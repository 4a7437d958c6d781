"""C07 Authorize with contract certificates: chain to a trusted MO/V2G root, revocation status, CN = eMAID.

Trusted roots are those of the ISO 15118 trust store for the roles ``mo`` and ``v2g``
(:class:`pki.iso15118.trust.TrustStore`): MO/V2G roots imported with ``pnc trust add --role mo|v2g`` (or
``POST /api/v1/trust``) and our own active MO/V2G roots. A chain the station sends without the root (or without
the MO sub-CAs) is completed from the store's known intermediates, as for installation requests.

The station sends either the PEM contract chain (central validation, C07.FR.06) or OCSP request data for the
chain (C07.FR.01/02) or both. Outcomes map to OCPP's idTokenInfo.status and certificateStatus:

| outcome | idTokenInfo.status | certificateStatus |
|---|---|---|
| valid, CN = eMAID | Accepted | Accepted |
| revoked | Invalid | CertificateRevoked |
| expired / not yet valid | Expired | CertificateExpired |
| no path to an installed root | Invalid | CertChainError |
| a signature in the chain does not verify | Invalid | SignatureError |
| valid chain but CN is not the presented eMAID | Invalid | ContractCancelled |
| nothing to check, or only foreign issuers | Unknown | NoCertificateAvailable |

Revocation comes from an injected ``status_of`` (the OCSP service when present, else our certificate table).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.errors import InvalidRequest
from pki.hashdata import CertificateHashData
from pki.iso15118.trust import TrustStore
from pki.stations import verify_signed_by
from pki.store import repo

StatusOf = Callable[[CertificateHashData], str]  # -> "good" | "revoked" | "unknown"


@dataclass(frozen=True)
class AuthorizeOutcome:
    id_token_status: str
    certificate_status: str
    reason: str


def normalise_emaid(value: str) -> str:
    return value.replace("-", "").replace("*", "").upper()


def db_status(authority: Authority) -> StatusOf:
    """Revocation status from our own records (used until the OCSP service is merged)."""

    def status_of(h: CertificateHashData) -> str:
        issuers = repo.find_issuers(authority.db, h.hash_algorithm.value, h.issuer_name_hash, h.issuer_key_hash)
        for ca_id in issuers:
            rec = repo.get_certificate_by_serial(authority.db, ca_id, h.serial_number)
            if rec is not None and rec.status in ("valid", "revoked"):
                return "good" if rec.status == "valid" else "revoked"
        return "unknown"

    return status_of


MAX_CHAIN = 5  # leaf + up to 3 sub-CAs + root


def _complete(chain: list[x509.Certificate], trust: TrustStore) -> list[x509.Certificate] | None:
    """The chain up to a trusted MO/V2G root, completed from the store's intermediates; None if no root."""
    view = trust.view(["mo", "v2g"])
    path = list(chain)
    while len(path) <= MAX_CHAIN:
        last = path[-1]
        if last.issuer == last.subject:  # self-signed: must be a trusted root itself
            return path if last in view.anchors else None
        root = next((r for r in view.anchors if r.subject == last.issuer), None)
        if root is not None:
            return [*path, root]
        parent = next((c for c in view.intermediates if c.subject == last.issuer and c not in path), None)
        if parent is None:
            return None
        path.append(parent)
    return None


def _hash_of(cert: x509.Certificate, issuer: x509.Certificate) -> CertificateHashData:
    from pki.hashdata import certificate_hash_data

    return certificate_hash_data(cert, issuer)


def authorize(authority: Authority, id_token: str, *, certificate_pem: str | None,
              hash_data: list[dict[str, str]] | None, status_of: StatusOf, now: dt.datetime,
              trust: TrustStore | None = None) -> AuthorizeOutcome:
    """``trust``: the (cached) trust store of the contract service; a fresh one over ``authority`` if omitted."""
    if certificate_pem:
        return _authorize_chain(authority, id_token, certificate_pem, status_of, now,
                                trust if trust is not None else TrustStore(authority))
    if hash_data:
        return _authorize_hashes(authority, hash_data, status_of)
    return AuthorizeOutcome("Unknown", "NoCertificateAvailable", "no contract certificate or hash data")


def _authorize_chain(authority: Authority, id_token: str, pem: str, status_of: StatusOf,
                     now: dt.datetime, trust: TrustStore) -> AuthorizeOutcome:
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return AuthorizeOutcome("Invalid", "CertChainError", "certificate is not a PEM chain")
    if not chain or len(chain) > 4:
        return AuthorizeOutcome("Invalid", "CertChainError", "chain must hold 1-4 certificates")
    completed = _complete(list(chain), trust)  # the station may send the chain without the root (2.1 text)
    if completed is None:
        return AuthorizeOutcome("Invalid", "CertChainError", "chain does not lead to a trusted MO/V2G root")
    path = completed
    for child, parent in itertools.pairwise(path):
        if child.issuer != parent.subject:
            return AuthorizeOutcome("Invalid", "CertChainError", "chain is out of order or incomplete")
        if not verify_signed_by(child, parent):
            return AuthorizeOutcome("Invalid", "SignatureError", "a certificate signature does not verify")
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return AuthorizeOutcome("Expired", "CertificateExpired", "a certificate of the chain is not valid now")
    for child, parent in itertools.pairwise(path):
        if status_of(_hash_of(child, parent)) == "revoked":
            return AuthorizeOutcome("Invalid", "CertificateRevoked", "a certificate of the chain is revoked")
    cn = path[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or normalise_emaid(str(cn[0].value)) != normalise_emaid(id_token):
        return AuthorizeOutcome("Invalid", "ContractCancelled", "contract certificate CN is not the presented eMAID")
    return AuthorizeOutcome("Accepted", "Accepted", "contract chain valid")


def _authorize_hashes(authority: Authority, hash_data: list[dict[str, str]], status_of: StatusOf) -> AuthorizeOutcome:
    known = 0
    for item in hash_data:
        try:
            h = CertificateHashData.from_ocpp(item)
        except InvalidRequest:
            return AuthorizeOutcome("Invalid", "CertChainError", "malformed certificate hash data")
        status = status_of(h)
        if status == "revoked":
            return AuthorizeOutcome("Invalid", "CertificateRevoked", "a certificate of the chain is revoked")
        if status == "good":
            known += 1
    if known == 0:
        return AuthorizeOutcome("Unknown", "NoCertificateAvailable", "no certificate of the chain is known to us")
    return AuthorizeOutcome("Accepted", "Accepted", "contract chain not revoked")
