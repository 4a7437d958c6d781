"""CRLs: one full CRL per CA, signed with the CA key, numbered upwards (RFC 5280 §5).

Regenerated when a certificate of the CA is revoked or released from hold, and by the maintenance loop before
``nextUpdate`` comes close. The newest CRL of each CA is stored, so several instances serve the same bytes and the
CRL number never goes backwards (the (ca, number) pair is unique in the database).
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError

from pki.authority import Authority
from pki.clock import utc
from pki.errors import Conflict, NotFound
from pki.profiles import Generation
from pki.profiles.builder import signature_hash
from pki.revocation import RevocationEvent, RevocationReason
from pki.store import ocsp_repo, repo
from pki.store.models import CertificateAuthority
from pki.store.ocsp_models import CrlRecord

log = logging.getLogger("pnc.crl")


class CrlService:
    def __init__(self, authority: Authority, *, validity: dt.timedelta = dt.timedelta(days=7),
                 regenerate_before: dt.timedelta = dt.timedelta(days=3, hours=12)) -> None:
        self.authority = authority
        self.validity = validity
        self.regenerate_before = regenerate_before

    def generate(self, ca: CertificateAuthority, *, actor: str = "system") -> CrlRecord:
        """Sign and store a new CRL for ``ca`` listing every revoked certificate it issued."""
        if ca.external_key:
            raise NotFound(f"CA {ca.name!r} has an offline key; its CRL is signed in a ceremony, not here")
        assert ca.id is not None
        ca_cert = self.authority.ca_certificate(ca)
        signer = self.authority.keys.signer(ca.key_uri)
        for _ in range(5):
            now = self.authority.clock.now().replace(microsecond=0)
            number = ocsp_repo.latest_crl_number(self.authority.db, ca.id) + 1
            revoked = ocsp_repo.cert_status_rows(self.authority.db, ca_id=ca.id, revoked_only=True)
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(ca_cert.subject)
                .last_update(now)
                .next_update(now + self.validity)
                .add_extension(x509.CRLNumber(number), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                               critical=False)
            )
            for row in sorted(revoked, key=lambda r: r.serial):
                entry = (x509.RevokedCertificateBuilder().serial_number(int(row.serial, 16))
                         .revocation_date(utc(row.revoked_at) if row.revoked_at else now))
                reason = RevocationReason.parse(row.reason) if row.reason else RevocationReason.UNSPECIFIED
                if reason is not RevocationReason.UNSPECIFIED:
                    entry = entry.add_extension(x509.CRLReason(reason.flag), critical=False)
                builder = builder.add_revoked_certificate(entry.build())
            crl = builder.sign(signer, signature_hash(signer, Generation(ca.generation)))
            der = crl.public_bytes(serialization.Encoding.DER)
            try:
                record = ocsp_repo.add_crl(self.authority.db, CrlRecord(
                    ca_id=ca.id, number=number, der=der, this_update=now, next_update=now + self.validity,
                    revoked_count=len(revoked)))
            except IntegrityError:
                continue  # another instance took this number; sign again with the next one
            repo.add_audit(self.authority.db, repo.audit_event(actor, "crl.generate", "success", target=ca.name,
                                                                details={"number": number,
                                                                         "revoked": len(revoked)}))
            return record
        raise Conflict(f"could not store a CRL for {ca.name!r}: CRL numbers kept colliding")

    def current(self, ca: CertificateAuthority) -> CrlRecord:
        """The newest CRL, generated first when there is none or it is close to ``nextUpdate``."""
        assert ca.id is not None
        rec = ocsp_repo.latest_crl(self.authority.db, ca.id)
        if rec is None or utc(rec.next_update) - self.authority.clock.now() < self.regenerate_before:
            try:
                return self.generate(ca)
            except Exception:
                if rec is not None and utc(rec.next_update) > self.authority.clock.now():
                    return rec  # still valid: better than nothing while signing is impossible
                raise
        return rec

    def maintain(self) -> int:
        """Regenerate every CRL that is missing or due; returns how many were signed."""
        count = 0
        for ca in self.authority.cas():
            if ca.external_key or ca.certificate_id is None or ca.id is None:
                continue
            rec = ocsp_repo.latest_crl(self.authority.db, ca.id)
            if rec is None or utc(rec.next_update) - self.authority.clock.now() < self.regenerate_before:
                try:
                    self.generate(ca)
                    count += 1
                except Exception as exc:
                    log.warning("CRL generation for %s failed: %s", ca.name, type(exc).__name__)
        return count

    def on_revocation(self, event: RevocationEvent) -> None:
        ca = self.authority.ca_by_id(event.record.ca_id)
        if not ca.external_key:
            self.generate(ca, actor="revocation")

    @staticmethod
    def pem(record: CrlRecord) -> bytes:
        return x509.load_der_x509_crl(record.der).public_bytes(serialization.Encoding.PEM)
