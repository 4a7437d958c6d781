"""The ISO 15118 trust store: which V2G, MO and OEM roots (and their sub-CAs) we accept from EVs and stations.

Roots are trust anchors. Sub-CAs are stored as *known intermediates*: an ISO 15118-2 CertificateInstallationReq
carries only the OEM provisioning leaf, so the CPS must already know the OEM Sub-CAs to build the path. A sub-CA
is accepted only if it validates to a stored (or our own) root of its role at the time it is added, so the store
can never hold an intermediate that is not anchored.

Our own roots (the CAs of :mod:`pki.authority`) are trusted implicitly: v2g-root for the V2G role, mo-root for MO,
oem-root for OEM, with their sub-CAs as intermediates.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pki.authority import Authority
from pki.clock import utc
from pki.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from pki.identifiers import decimal_id
from pki.iso15118.pathval import PathError, validate_path
from pki.profiles import CertKind
from pki.store import contract_repo, repo
from pki.store.contract_models import TrustAnchor, TrustRole

_OWN_ROOT_ROLE = {CertKind.V2G_ROOT.value: TrustRole.V2G, CertKind.MO_ROOT.value: TrustRole.MO,
                  CertKind.OEM_ROOT.value: TrustRole.OEM}


@dataclass(frozen=True)
class TrustView:
    """Anchors and intermediates for a set of roles, ready for :func:`validate_path`."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """A PEM bundle (one or more certificates) or a single DER certificate."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN" in raw:
            certs = x509.load_pem_x509_certificates(raw)
        else:
            certs = [x509.load_der_x509_certificate(raw)]
    except ValueError:
        raise InvalidRequest("not a PEM certificate bundle or a DER certificate") from None
    if not certs:
        raise InvalidRequest("no certificate found")
    return certs


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


class TrustStore:
    """``view`` is cached for ``cache_seconds`` (it is read on every installation; trust changes are rare and clear
    the cache of this process at once; other processes see them within ``cache_seconds``)."""

    def __init__(self, authority: Authority, *, cache_seconds: float = 10.0) -> None:
        self.authority = authority
        self.cache_seconds = cache_seconds
        self._cache: dict[frozenset[str], tuple[float, TrustView]] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> repo.Database:
        return self.authority.db

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    # --- management ---------------------------------------------------------------------------------------

    def add(self, data: bytes | str, role: str, *, label: str | None = None,
            actor: str = "system") -> list[TrustAnchor]:
        """Add a root or a bundle (roots first or not: sub-CAs are added once their issuer is trusted)."""
        if role not in TrustRole.ALL:
            raise InvalidRequest(f"role must be one of {', '.join(TrustRole.ALL)}")
        certs = load_certificates(data)
        for cert in certs:
            if not _is_ca(cert):
                raise PolicyViolation(f"{cert.subject.rfc4514_string()} is not a CA certificate; the trust store "
                                      "holds roots and sub-CAs only")
            fp = cert.fingerprint(hashes.SHA256()).hex()
            if contract_repo.get_trust_anchor_by_fingerprint(self.db, fp) is not None:
                raise Conflict(f"{cert.subject.rfc4514_string()} (sha256 {fp[:16]}…) is already in the trust store")
        roots = [c for c in certs if _is_self_signed(c)]
        pending = [c for c in certs if c not in roots]
        added = [self._store(c, role, True, label, actor) for c in roots]
        now = self.authority.clock.now()
        while pending:
            view = self.view([role])
            progress = False
            for cert in list(pending):
                try:
                    validate_path(cert, view.intermediates, view.anchors, now, end_entity=False)
                except PathError:
                    continue
                added.append(self._store(cert, role, False, label, actor))
                pending.remove(cert)
                progress = True
            if not progress:
                names = "; ".join(c.subject.rfc4514_string() for c in pending)
                raise PolicyViolation(f"sub-CA(s) {names} do not validate to a trusted {role} root (add the root "
                                      "first); nothing after the roots was added", code="CertChainError")
        return added

    def _store(self, cert: x509.Certificate, role: str, is_root: bool, label: str | None, actor: str) -> TrustAnchor:
        fp = cert.fingerprint(hashes.SHA256()).hex()
        subject_der = cert.subject.public_bytes()
        anchor = TrustAnchor(
            role=role, is_root=is_root, subject=cert.subject.rfc4514_string()[:1024],
            subject_der_hash=hashlib.sha256(subject_der).hexdigest(), serial=format(cert.serial_number, "x"),
            fingerprint_sha256=fp, der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, label=label, added_by=actor,
        )
        audit = repo.audit_event(actor, "trust.add", "success", target=f"{role}/{fp}",
                                 details={"subject": anchor.subject, "root": is_root, "label": label})
        try:
            return contract_repo.add_trust_anchor(self.db, anchor, audit)
        except contract_repo.DuplicateAnchor:
            raise Conflict(f"{anchor.subject} is already in the trust store") from None
        finally:
            self.invalidate()

    def list(self, role: str | None = None) -> list[TrustAnchor]:
        return contract_repo.list_trust_anchors(self.db, role=role)

    def remove(self, ident: str, *, actor: str = "system") -> TrustAnchor:
        """Remove by id or by (a unique prefix of at least 8 hex digits of) the SHA-256 fingerprint."""
        row = self._find(ident)
        assert row.id is not None
        audit = repo.audit_event(actor, "trust.remove", "success", target=f"{row.role}/{row.fingerprint_sha256}",
                                 details={"subject": row.subject})
        contract_repo.delete_trust_anchor(self.db, row.id, audit)
        self.invalidate()
        return row

    def _find(self, ident: str) -> TrustAnchor:
        # Shorter than any accepted fingerprint prefix: an id. Longer all-digit strings may be either — about one
        # fingerprint in a hundred starts with ten decimal digits — so they are looked up as a prefix first.
        short_id = decimal_id(ident, max_digits=7)
        if short_id is not None:
            row = contract_repo.get_trust_anchor(self.db, short_id)
            if row is None:
                raise NotFound(f"no trust anchor with id {ident}")
            return row
        prefix = ident.lower().replace(":", "")
        if len(prefix) < 8:
            raise InvalidRequest("give an id or at least 8 hex digits of the SHA-256 fingerprint")
        rows = [r for r in self.list() if r.fingerprint_sha256.startswith(prefix)]
        long_id = decimal_id(ident, max_digits=18)  # fits a database integer
        if not rows and long_id is not None:
            by_id = contract_repo.get_trust_anchor(self.db, long_id)
            if by_id is not None:
                return by_id
        if not rows:
            raise NotFound(f"no trust anchor with fingerprint {prefix}…")
        if len(rows) > 1:
            raise InvalidRequest(f"fingerprint prefix {prefix} is ambiguous")
        return rows[0]

    # --- use ----------------------------------------------------------------------------------------------

    def view(self, roles: Iterable[str]) -> TrustView:
        wanted = frozenset(roles)
        now_mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(wanted)
            if hit is not None and hit[0] > now_mono:
                return hit[1]
        result = self._build_view(wanted)
        with self._lock:
            self._cache[wanted] = (now_mono + self.cache_seconds, result)
        return result

    def _build_view(self, wanted: frozenset[str]) -> TrustView:
        anchors: list[x509.Certificate] = []
        intermediates: list[x509.Certificate] = []
        now = self.authority.clock.now()
        for row in self.list():
            if row.role in wanted and utc(row.not_after) >= now:
                (anchors if row.is_root else intermediates).append(x509.load_der_x509_certificate(row.der))
        for ca in self.authority.cas():
            if ca.certificate_id is None or ca.status != "active":
                continue
            root = self.authority.root_of(ca)
            if _OWN_ROOT_ROLE.get(root.kind) not in wanted:
                continue
            cert = self.authority.ca_certificate(ca)
            (anchors if ca.parent_id is None else intermediates).append(cert)
        return TrustView(tuple(anchors), tuple(intermediates))
