"""CPS leaf provisioning: the signing identity of CertificateInstallationRes/UpdateRes.

Each active CPS Sub-CA 2 gets a CPS leaf certificate whose key lives in the key store (generated there, never
exported). The certificate record's ``owner`` holds ``key:<key URI>`` so the key can be found again after a
restart without a new table. A leaf is renewed (new key, new certificate) once it has less than ``renew_before``
left, so a response is never signed with a certificate about to expire; the previous one stays valid until it
expires naturally (EVs may still verify responses signed a moment ago).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.clock import utc
from pki.errors import NotFound
from pki.keys.base import KeyAlgorithm, Signer
from pki.profiles import CertKind, Generation
from pki.store import repo
from pki.store.models import CertificateAuthority, CertStatus

KEY_PREFIX = "key:"


@dataclass(frozen=True)
class CpsSigner:
    key: Signer
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # CPS Sub-CA 2, Sub-CA 1 (no root)
    root: x509.Certificate
    record_id: int
    ca_name: str

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


class CpsProvisioner:
    def __init__(self, authority: Authority, *, renew_before: dt.timedelta = dt.timedelta(days=14),
                 validity_days: int | None = None, organization: str = "pnc-pki", country: str = "DE") -> None:
        self.authority = authority
        self.renew_before = renew_before
        self.validity_days = validity_days
        self.organization = organization
        self.country = country
        self._cache: dict[int, CpsSigner] = {}
        self._lock = threading.Lock()

    def signers(self, generation: Generation) -> list[CpsSigner]:
        """One current signer per active CPS Sub-CA 2 of ``generation`` (issuing or renewing as needed)."""
        cas = self.authority.active_cas_of_kind(CertKind.CPS_SUB2.value, generation.value)
        return [self.current(ca) for ca in cas]

    def current(self, ca: CertificateAuthority) -> CpsSigner:
        assert ca.id is not None
        now = self.authority.clock.now()
        with self._lock:
            cached = self._cache.get(ca.id)
            if cached is not None and cached.not_after - now > self.renew_before:
                return cached
            signer = self._existing(ca, now) or self._issue(ca)
            self._cache[ca.id] = signer
            return signer

    def _existing(self, ca: CertificateAuthority, now: dt.datetime) -> CpsSigner | None:
        rows = repo.list_certificates(self.authority.db, kind=CertKind.CPS_LEAF.value, status=CertStatus.VALID,
                                      ca_id=ca.id, limit=1000)
        rows = [r for r in rows if r.owner and r.owner.startswith(KEY_PREFIX)
                and utc(r.not_after) - now > self.renew_before and r.der is not None]
        if not rows:
            return None
        best = max(rows, key=lambda r: utc(r.not_after))
        assert best.der is not None and best.id is not None and best.owner is not None
        try:
            key = self.authority.keys.signer(best.owner[len(KEY_PREFIX):])
        except Exception:
            return None
        return self._signer(ca, x509.load_der_x509_certificate(best.der), key, best.id)

    def _issue(self, ca: CertificateAuthority) -> CpsSigner:
        algorithm = KeyAlgorithm(ca.key_algorithm)
        label = f"cps-leaf-{ca.name}-{self.authority.clock.now():%Y%m%dT%H%M%S%f}"
        key_uri = self.authority.keys.generate(label, algorithm, scheme=self.authority.key_scheme)
        key = self.authority.keys.signer(key_uri)
        subject = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "CPS Leaf"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
            x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPS"),
        ])
        issued = self.authority.issue_for_public_key(CertKind.CPS_LEAF, subject, key.public_key(), issuer=ca,
                                                     validity_days=self.validity_days,
                                                     owner=f"{KEY_PREFIX}{key_uri}", actor="cps")
        assert issued.record.id is not None
        return self._signer(ca, issued.certificate, key, issued.record.id)

    def _signer(self, ca: CertificateAuthority, cert: x509.Certificate, key: Signer, record_id: int) -> CpsSigner:
        root = self.authority.ca_certificate(self.authority.root_of(ca))
        return CpsSigner(key, cert, self.authority.chain(ca), root, record_id, ca.name)

    def for_roots(self, generation: Generation, accept: Sequence[x509.Certificate] | None) -> CpsSigner:
        """A signer whose chain ends in one of ``accept`` (the EV's roots); any signer when ``accept`` is None."""
        signers = self.signers(generation)
        for s in signers:
            if accept is None or any(s.root == r for r in accept):
                return s
        raise NotFound("no CPS certificate chain leads to a root the EV trusts", code="FAILED_NoCertificateAvailable")
