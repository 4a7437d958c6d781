"""Bulk issuance: many station (or other leaf) certificates from many CSRs, in a few transactions.

Factory provisioning is the case: a charger manufacturer or an operator migrating a fleet sends thousands of CSRs
at once, and one-at-a-time issuance pays two commits and two ORM objects per certificate — several times the
signature. Here each CSR is still checked on its own (a refused one is that item's error, audited, and does not
stop the others); the accepted ones of a chunk are reserved with one INSERT, signed, and made valid in one
transaction together with one audit entry each. The guarantees are those of :meth:`Authority.issue_from_csr`:
a record is pending before anything is signed, a certificate is returned only after its record and audit entry
committed, and a chunk whose write fails returns :class:`StorageUnavailable` for its items while the chunks
before it keep their certificates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki import csr_policy
from pki.authority import _SERIAL_ATTEMPTS, Authority, new_serial
from pki.errors import Conflict, InvalidRequest, PkiError, PolicyViolation, StorageUnavailable
from pki.hashdata import serial_to_hex
from pki.keys.base import public_key_algorithm
from pki.profiles import CertKind, Generation, Profile, default_generation, get_profile
from pki.profiles.builder import CertificateTemplate, check_size, sign_certificate
from pki.store import audit_chain, bulk
from pki.store.models import CertificateAuthority, CertStatus
from pki.store.repo import DuplicateSerial

CHUNK = 250  # certificates per transaction pair: bounds how long one batch holds SQLite's write lock (~10 ms)
_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class BatchRequest:
    """One CSR of a batch, with what its requester's identity demands of it."""

    csr: bytes | str
    owner: str | None = None
    expect: csr_policy.SubjectExpectation | None = None


@dataclass(frozen=True)
class BatchIssued:
    """A certificate of a batch: recorded valid and audited before it is returned."""

    id: int
    serial: str
    certificate: x509.Certificate

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class BatchResult:
    """One outcome per request, in request order, and the chain every issued certificate shares."""

    issuer: CertificateAuthority
    chain: tuple[x509.Certificate, ...]
    items: list[BatchIssued | PkiError]

    @property
    def issued(self) -> int:
        return sum(isinstance(i, BatchIssued) for i in self.items)

    def chain_pem(self) -> str:
        """Sub-CA 2, Sub-CA 1 (root excluded): append to each leaf for OCPP CertificateSigned."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)


@dataclass
class _Accepted:
    index: int
    template: CertificateTemplate
    row: dict[str, object]


class _Refused(Exception):
    """A CSR the policy refused, with the subject its audit entry names."""

    def __init__(self, error: PkiError, subject: str) -> None:
        super().__init__(error.message)
        self.error, self.subject = error, subject


def issue_batch(
    authority: Authority,
    requests: Sequence[BatchRequest],
    kind: CertKind,
    *,
    generation: Generation | None = None,
    issuer: str | None = None,
    validity_days: int | None = None,
    actor: str = "system",
    request_id: str | None = None,
    chunk: int = CHUNK,
) -> BatchResult:
    """Issue one certificate per acceptable CSR; raises only for what concerns the whole batch (an unknown
    kind or issuer, a CA profile, an invalid validity), everything else is the item's own outcome."""
    issuer_ca = authority.ca(issuer) if issuer else None
    gen = generation or (Generation(issuer_ca.generation) if issuer_ca else default_generation(kind))
    profile = get_profile(kind, gen)
    if profile.is_ca:
        raise PolicyViolation("CA certificates are created with `pnc ca create`, not from CSRs")
    issuer_ca = authority.checked_issuer(profile, issuer_ca)
    issuer_cert = authority.ca_certificate(issuer_ca)
    window = authority.validity_window(profile, validity_days, issuer_cert.not_valid_after_utc)
    run = _Run(authority, profile, issuer_ca, issuer_cert, window, actor, request_id)
    items: list[BatchIssued | PkiError] = []
    for start in range(0, len(requests), max(chunk, 1)):
        items.extend(run.chunk(requests[start:start + max(chunk, 1)]))
    return BatchResult(issuer_ca, authority.chain(issuer_ca), items)


class _Run:
    """The parts every item of one batch shares: issuer, signer, profile, validity window, URLs."""

    def __init__(self, authority: Authority, profile: Profile, issuer_ca: CertificateAuthority,
                 issuer_cert: x509.Certificate, window: tuple[dt.datetime, dt.datetime], actor: str,
                 request_id: str | None) -> None:
        self.authority = authority
        self.profile = profile
        self.issuer_ca = issuer_ca
        assert issuer_ca.id is not None
        self.ca_id = issuer_ca.id
        self.issuer_name = issuer_cert.subject
        self.issuer_public_key = issuer_cert.public_key()
        self.signer = authority.keys.signer(issuer_ca.key_uri)
        self.not_before, self.not_after = window
        self.urls = authority.urls_for(issuer_ca)
        self.actor = actor
        self.request_id = request_id

    def chunk(self, requests: Sequence[BatchRequest]) -> list[BatchIssued | PkiError]:
        started = time.perf_counter()
        out: list[BatchIssued | PkiError | None] = [None] * len(requests)
        audit: list[dict[str, Any]] = []
        accepted: list[_Accepted] = []
        for index, request in enumerate(requests):
            try:
                accepted.append(self._accept(index, request))
            except InvalidRequest as exc:  # not parsable: as in issue_from_csr, there is no subject to audit
                out[index] = exc
            except _Refused as refused:
                out[index] = refused.error
                audit.append(self._audit("refused", self.profile.kind.value, {
                    "reason": refused.error.code, "message": refused.error.message, "subject": refused.subject}))
            except Exception as exc:  # a CSR cryptography chokes on must not take the batch down with it
                out[index] = InvalidRequest(f"CSR could not be processed ({type(exc).__name__})")
        try:
            ids = self._reserve(accepted)
        except PkiError as exc:
            for a in accepted:
                out[a.index] = exc
            accepted, ids = [], []
        changes: list[dict[str, object]] = []
        signed: list[tuple[_Accepted, int, x509.Certificate]] = []
        failed: list[int] = []
        issued_at = self.authority.clock.now()
        for a, record_id in zip(accepted, ids, strict=True):
            try:
                cert = sign_certificate(a.template, self.signer)
            except Exception as exc:  # that item alone; its record is aborted below
                failed.append(record_id)
                out[a.index] = exc if isinstance(exc, PkiError) else PkiError("signing failed", code="SigningFailed")
                continue
            changes.append({"record_id": record_id, "der": cert.public_bytes(_DER),
                            "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(), "issued_at": issued_at})
            audit.append(self._audit("success", f"{self.issuer_ca.name}/{a.row['serial']}", {
                "kind": self.profile.kind.value, "subject": a.row["subject"], "owner": a.row["owner"]}))
            signed.append((a, record_id, cert))
        try:
            bulk.abort(self.authority.db, failed, "signing failed")
            bulk.finalise(self.authority.db, changes, audit)
        except StorageUnavailable as exc:
            self._abort_quietly([record_id for _, record_id, _ in signed])
            for a, _, _ in signed:
                out[a.index] = exc
            signed = []
        for a, record_id, cert in signed:
            out[a.index] = BatchIssued(record_id, str(a.row["serial"]), cert)
        self._observe(out, time.perf_counter() - started)
        return [o if o is not None else PkiError("not processed") for o in out]

    def _accept(self, index: int, request: BatchRequest) -> _Accepted:
        csr = csr_policy.CsrView(csr_policy.load_csr(request.csr))
        try:
            csr_policy.evaluate(csr, self.profile, request.expect)
            public_key = csr.public_key()
            dns = (csr.attrs["CN"][0],) if self.profile.kind is CertKind.CSMS_SERVER else ()
            template = CertificateTemplate(
                profile=self.profile, subject=csr.subject, public_key=public_key, serial=new_serial(),
                not_before=self.not_before, not_after=self.not_after,
                issuer_name=self.issuer_name, issuer_public_key=self.issuer_public_key, urls=self.urls,
                dns_names=dns)
            check_size(template, self.signer)
        except PkiError as exc:
            raise _Refused(exc, csr.subject.rfc4514_string()) from None
        algorithm = public_key_algorithm(public_key)
        assert algorithm is not None  # check_key admitted it
        row: dict[str, object] = {
            "ca_id": self.ca_id, "serial": "", "kind": self.profile.kind.value,
            "generation": self.profile.generation.value, "status": CertStatus.PENDING,
            "subject": csr.subject.rfc4514_string(), "key_algorithm": algorithm.value,
            "not_before": self.not_before, "not_after": self.not_after, "owner": request.owner, "actor": self.actor,
            "request_id": self.request_id, "created_at": None,
        }
        return _Accepted(index, template, row)

    def _reserve(self, accepted: list[_Accepted]) -> list[int]:
        """One INSERT for the chunk; on the (2^-126) chance of a taken serial, fresh serials for all of it."""
        if not accepted:
            return []
        created = self.authority.clock.now()
        for attempt in range(_SERIAL_ATTEMPTS):
            for a in accepted:
                if attempt:  # the first attempt uses the serial each template was built with
                    a.template = dataclasses.replace(a.template, serial=new_serial())
                a.row["serial"], a.row["created_at"] = serial_to_hex(a.template.serial), created
            try:
                return bulk.reserve(self.authority.db, [a.row for a in accepted])
            except DuplicateSerial:
                continue
        raise Conflict("could not reserve unique serial numbers")

    def _abort_quietly(self, record_ids: list[int]) -> None:
        """After a failed finalisation: the records stay pending if the database is still away, and recovery
        (``Authority.recover_pending``) aborts them later; no certificate of them was returned."""
        try:
            bulk.abort(self.authority.db, record_ids, "finalisation failed")
        except StorageUnavailable:
            pass

    def _audit(self, outcome: str, target: str, details: dict[str, Any]) -> dict[str, Any]:
        return audit_chain.new_row(self.actor, "certificate.issue", outcome, self.authority.clock.now(),
                                   target=target, request_id=self.request_id, details=details)

    def _observe(self, out: Sequence[BatchIssued | PkiError | None], seconds: float) -> None:
        """Tell the issuance observers (metrics) of every item, each with the chunk's mean time."""
        if not self.authority.observers or not out:
            return
        each = seconds / len(out)
        for item in out:
            outcome = ("issued" if isinstance(item, BatchIssued) else "refused" if isinstance(item, PolicyViolation)
                       else "invalid" if isinstance(item, InvalidRequest) else "error")
            for observer in self.authority.observers:
                observer(self.profile.kind.value, outcome, each)
