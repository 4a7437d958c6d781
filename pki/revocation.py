"""Revocation with RFC 5280 reason codes: revoke, put on hold, release a hold.

Rules (RFC 5280 §5.3.1 and common CA practice):
- ``certificateHold`` is the only reversible state; ``removeFromCRL`` releases a hold (status back to valid).
- Revoking is idempotent: the same request again changes nothing and reports ``changed=False``.
- A hold may be turned into a permanent revocation (keeps the original revocation time).
- A permanently revoked certificate keeps its reason, except that it may be raised to ``keyCompromise`` (the
  stronger statement, as Let's Encrypt allows); anything else is a no-op, never an error.
- Revoking a CA's own certificate also marks the CA ``revoked`` (it can no longer issue). What OCSP then answers for
  the CA's children is decided in :func:`effective_status` (RFC 6960 §2.7).

Every change is one transaction with its audit event; listeners (the OCSP service, the CRL service) are told after
the commit so they can replace pre-signed responses and regenerate the CRL at once.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509

from pki.authority import Authority
from pki.clock import utc
from pki.errors import Conflict, InvalidRequest, NotFound
from pki.store import ocsp_repo, repo
from pki.store.models import CaStatus, Certificate, CertStatus

log = logging.getLogger("pnc.revocation")


class RevocationReason(enum.StrEnum):
    """RFC 5280 CRLReason names (camelCase as in the RFC); values are stored in ``certificate.revocation_reason``."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    REMOVE_FROM_CRL = "removeFromCRL"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"

    @classmethod
    def parse(cls, value: str) -> RevocationReason:
        """Accept the RFC name in any case and with or without ``-``/``_`` (key-compromise, KEY_COMPROMISE)."""
        wanted = value.replace("-", "").replace("_", "").strip().lower()
        for member in cls:
            if member.value.lower() == wanted:
                return member
        names = ", ".join(m.value for m in cls)
        raise InvalidRequest(f"unknown revocation reason {value!r}; use one of {names}", code="InvalidReason")

    @property
    def flag(self) -> x509.ReasonFlags:
        return _FLAGS[self]

    @property
    def is_permanent(self) -> bool:
        return self not in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)


_FLAGS = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.REMOVE_FROM_CRL: x509.ReasonFlags.remove_from_crl,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}

#: Reasons of a CA certificate's revocation after which RFC 6960 §2.7 lets a responder answer "revoked" for every
#: certificate the CA issued: its key can no longer be trusted to have signed only what we recorded.
CA_KEY_COMPROMISE = frozenset({RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE})


@dataclass(frozen=True)
class RevocationEvent:
    """What changed, for listeners (OCSP cache, CRL)."""

    record: Certificate
    action: str  # "revoke" | "release"
    reason: RevocationReason | None
    is_ca: bool


@dataclass(frozen=True)
class RevocationResult:
    record: Certificate
    changed: bool


Listener = Callable[[RevocationEvent], None]


def revoke(
    authority: Authority,
    record: Certificate,
    reason: RevocationReason | str,
    *,
    actor: str,
    request_id: str | None = None,
    at: dt.datetime | None = None,
    listeners: Iterable[Listener] = (),
) -> RevocationResult:
    """Revoke ``record`` (or, with ``removeFromCRL``, release its hold). Idempotent; audited; listeners run after."""
    why = reason if isinstance(reason, RevocationReason) else RevocationReason.parse(reason)
    if why is RevocationReason.REMOVE_FROM_CRL:
        return release_hold(authority, record, actor=actor, request_id=request_id, listeners=listeners)
    db = authority.db
    now = authority.clock.now()
    when = (at or now).replace(microsecond=0)
    if when > now + dt.timedelta(minutes=5):
        raise InvalidRequest("the revocation time cannot be in the future")
    for _ in range(3):  # compare-and-set; a concurrent change makes us re-read
        current = _reload(authority, record)
        target = f"{authority.ca_by_id(current.ca_id).name}/{current.serial}"
        old_reason = RevocationReason.parse(current.revocation_reason) if current.revocation_reason else None
        if current.status == CertStatus.REVOKED and old_reason is not None:
            upgrade = (old_reason is RevocationReason.CERTIFICATE_HOLD and why.is_permanent) or (
                why is RevocationReason.KEY_COMPROMISE and old_reason is not RevocationReason.KEY_COMPROMISE)
            if not upgrade:
                return RevocationResult(current, False)
            new_time = utc(current.revoked_at) if current.revoked_at else when
        else:
            new_time = when
        audit = repo.audit_event(actor, "certificate.revoke", "success", target=target, request_id=request_id,
                                 details={"reason": why.value, "previous": current.revocation_reason,
                                          "revoked_at": new_time.isoformat(), "ca": current.subject_ca_id is not None})
        updated = ocsp_repo.set_revocation(
            db, _id(current), status=CertStatus.REVOKED, revoked_at=new_time, reason=why.value, audit=audit,
            now=now, ca_status=CaStatus.REVOKED, expect=(current.status, current.revocation_reason))
        if updated is not None:
            if updated.subject_ca_id is not None:
                authority._ca_cert_cache.pop(updated.subject_ca_id, None)
                authority.forget_cas()  # the CA row changed status: no cached "active" may outlive it here
                ocsp_repo.stale_responses_of_issuer(db, updated.subject_ca_id, now)
            _notify(listeners, RevocationEvent(updated, "revoke", why, updated.subject_ca_id is not None))
            return RevocationResult(updated, True)
    raise Conflict("the certificate changed concurrently; try again")


def release_hold(
    authority: Authority,
    record: Certificate,
    *,
    actor: str,
    request_id: str | None = None,
    listeners: Iterable[Listener] = (),
) -> RevocationResult:
    """``removeFromCRL``: a certificate on hold becomes valid again. Valid already: no-op. Permanently revoked: 409."""
    db = authority.db
    now = authority.clock.now()
    for _ in range(3):
        current = _reload(authority, record)
        if current.status == CertStatus.VALID:
            return RevocationResult(current, False)
        if current.revocation_reason != RevocationReason.CERTIFICATE_HOLD.value:
            raise Conflict(f"certificate {current.serial} is revoked ({current.revocation_reason}); only a "
                           "certificateHold can be released", code="NotOnHold")
        target = f"{authority.ca_by_id(current.ca_id).name}/{current.serial}"
        audit = repo.audit_event(actor, "certificate.release_hold", "success", target=target,
                                 request_id=request_id, details={"reason": RevocationReason.REMOVE_FROM_CRL.value})
        updated = ocsp_repo.set_revocation(
            db, _id(current), status=CertStatus.VALID, revoked_at=None, reason=None, audit=audit, now=now,
            ca_status=CaStatus.ACTIVE, expect=(current.status, current.revocation_reason))
        if updated is not None:
            if updated.subject_ca_id is not None:
                authority.forget_cas()
                ocsp_repo.stale_responses_of_issuer(db, updated.subject_ca_id, now)
            _notify(listeners, RevocationEvent(updated, "release", RevocationReason.REMOVE_FROM_CRL,
                                               updated.subject_ca_id is not None))
            return RevocationResult(updated, True)
    raise Conflict("the certificate changed concurrently; try again")


@dataclass(frozen=True)
class EffectiveStatus:
    """The status OCSP reports: ``good``, ``revoked`` (with time and reason) or ``unknown``."""

    status: str
    revoked_at: dt.datetime | None = None
    reason: RevocationReason | None = None


GOOD = EffectiveStatus("good")
UNKNOWN = EffectiveStatus("unknown")


def effective_status(row: ocsp_repo.CertStatusRow | None,
                     revoked_issuers: dict[int, tuple[dt.datetime | None, str | None]]) -> EffectiveStatus:
    """Status of a certificate for OCSP and CRLs, including RFC 6960 §2.7.

    A certificate of its own revoked -> revoked with its time and reason. A certificate whose issuing CA's
    certificate was revoked for keyCompromise or cACompromise -> revoked, reason cACompromise, at the CA's
    revocation time (the responder "knows that a particular CA's private key has been compromised"). For other CA
    revocation reasons (superseded, cessationOfOperation, ...) the children keep their own status: the CA is only
    retired, and relying parties see the CA certificate itself revoked when they check the chain.
    Pending (never released) and aborted records are ``unknown``.
    """
    if row is None or row.status not in (CertStatus.VALID, CertStatus.REVOKED):
        return UNKNOWN
    if row.status == CertStatus.REVOKED:
        reason = RevocationReason.parse(row.reason) if row.reason else RevocationReason.UNSPECIFIED
        return EffectiveStatus("revoked", utc(row.revoked_at) if row.revoked_at else None, reason)
    issuer = revoked_issuers.get(row.ca_id)
    if issuer is not None and issuer[1] is not None and RevocationReason.parse(issuer[1]) in CA_KEY_COMPROMISE:
        return EffectiveStatus("revoked", utc(issuer[0]) if issuer[0] else None, RevocationReason.CA_COMPROMISE)
    return GOOD


def _reload(authority: Authority, record: Certificate) -> Certificate:
    rec = repo.get_certificate(authority.db, _id(record))
    if rec is None or rec.status in (CertStatus.PENDING, CertStatus.ABORTED):
        raise NotFound(f"no certificate with serial {record.serial}")
    return rec


def _notify(listeners: Iterable[Listener], event: RevocationEvent) -> None:
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # the revocation is committed; a listener failure must not hide that
            log.exception("revocation listener failed for serial %s", event.record.serial)


def _id(rec: Certificate) -> int:
    if rec.id is None:
        raise NotFound("certificate record has no id")
    return rec.id
