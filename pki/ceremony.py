"""Offline root ceremony: the root key lives on a machine that never runs the service.

Offline side (:class:`OfflineRoot`): a self-contained directory with its own key store (encrypted files or an HSM)
and its own SQLite database (serials, issued sub-CA certificates, CRL numbers, its own hash-chained audit log). It
creates the root, signs sub-CA CSRs brought over on removable media, revokes sub-CAs and produces the root CRL.

Online side (functions taking an :class:`~pki.authority.Authority`): import the root certificate (the CA row gets
``external_key=True`` and no usable key), create a sub-CA key in the online key store and write its CSR
(:func:`request_sub_ca`), then import the signed sub-CA certificate (:func:`import_sub_ca`). Only certificates
cross the air gap in either direction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from pki.authority import Authority
from pki.clock import Clock, SystemClock
from pki.errors import Conflict, InvalidRequest, NotFound, PkiError, PolicyViolation
from pki.hashdata import issuer_hashes, serial_to_hex
from pki.keys.base import KeyAlgorithm, KeyManager, public_key_algorithm
from pki.profiles import CertKind, Generation, get_profile
from pki.profiles.builder import signature_hash
from pki.store import repo
from pki.store.models import Certificate, CertificateAuthority, CertStatus, IssuerHash

EXTERNAL_KEY_URI = "external:offline"
PENDING = "pending"  # a sub-CA whose key exists online but whose certificate the offline root has not signed yet
_MAX_CSR = 16 * 1024
_MAX_CERT = 16 * 1024


@dataclass(frozen=True)
class CrlResult:
    crl: x509.CertificateRevocationList
    number: int

    def pem(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.DER)


def subject_name(common_name: str, organization: str, country: str, domain_component: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
             x509.NameAttribute(NameOID.COUNTRY_NAME, country)]
    if domain_component:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, domain_component))
    return x509.Name(attrs)


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if len(data) > _MAX_CSR:
        raise InvalidRequest("CSR too large")
    try:
        csr = x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
    except ValueError:
        raise InvalidRequest("not a PKCS#10 certificate signing request") from None
    if not csr.is_signature_valid:
        raise PolicyViolation("the CSR's self-signature is invalid", code="InvalidSignature")
    return csr


def _load_cert(data: bytes) -> x509.Certificate:
    if len(data) > _MAX_CERT:
        raise InvalidRequest("certificate too large")
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidRequest("not an X.509 certificate") from None


# --- offline side ------------------------------------------------------------------------------------------


class OfflineRoot:
    """The ceremony machine's state: ``<dir>/ceremony.db`` plus a key store chosen by the caller."""

    def __init__(self, directory: Path, keys: KeyManager, *, clock: Clock | None = None,
                 key_scheme: str | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        self.db = repo.Database(f"sqlite:///{directory / 'ceremony.db'}")
        self.db.migrate()
        self.clock: Clock = clock or SystemClock()
        # The public URL is only used for AIA/CRL DP in leaves; an offline root never issues leaves.
        self.authority = Authority(self.db, keys, public_url="http://offline.invalid", clock=self.clock,
                                   key_scheme=key_scheme)

    def close(self) -> None:
        self.db.dispose()

    def create_root(self, name: str, kind: CertKind, generation: Generation, subject: x509.Name, *,
                    key_algorithm: KeyAlgorithm, validity_days: int | None = None) -> x509.Certificate:
        if self.authority.cas():
            raise Conflict("this ceremony directory already holds a root; use a new directory per root")
        ca = self.authority.create_root(name, kind, generation, subject, key_algorithm=key_algorithm,
                                        validity_days=validity_days, actor="ceremony")
        return self.authority.ca_certificate(ca)

    def root(self) -> CertificateAuthority:
        cas = self.authority.cas()
        if not cas:
            raise NotFound("no root in this ceremony directory; run `pnc ceremony create-root` first")
        return cas[0]

    def root_certificate(self) -> x509.Certificate:
        return self.authority.ca_certificate(self.root())

    def sign_sub_ca(self, csr_data: bytes, kind: CertKind, *, validity_days: int | None = None,
                    expect_common_name: str | None = None) -> x509.Certificate:
        """Sign a sub-CA CSR made by the online service. The subject is taken from the CSR (checked against the
        profile), everything else (extensions, validity, path length) from our profile — never from the CSR."""
        csr = _load_csr(csr_data)
        root = self.root()
        profile = get_profile(kind, Generation(root.generation))
        if not profile.is_ca or profile.is_root:
            raise PolicyViolation(f"{kind.value} is not a sub-CA kind")
        if profile.issuer_kind is None or profile.issuer_kind.value != root.kind:
            raise PolicyViolation(f"{kind.value} is not issued by a {root.kind}")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1:
            raise PolicyViolation("the CSR subject needs exactly one CN", code="InvalidSubject")
        if expect_common_name is not None and cns[0].value != expect_common_name:
            raise PolicyViolation(f"CSR CN {cns[0].value!r} is not the expected {expect_common_name!r}",
                                  code="InvalidSubject")
        issued = self.authority.issue_for_public_key(kind, csr.subject, csr.public_key(), issuer=root,
                                                     validity_days=validity_days, owner=str(cns[0].value),
                                                     actor="ceremony")
        return issued.certificate

    def revoke(self, serial: str, reason: x509.ReasonFlags = x509.ReasonFlags.unspecified) -> Certificate:
        rec = self.authority.certificate_by_serial(serial)
        if rec.subject_ca_id is not None and rec.ca_id == rec.subject_ca_id:
            raise PolicyViolation("the root cannot revoke itself; retire it and distribute a new trust anchor")
        if rec.status == CertStatus.REVOKED:
            raise Conflict(f"certificate {rec.serial} is already revoked")
        assert rec.id is not None
        audit = repo.audit_event("ceremony", "certificate.revoke", "success", target=f"root/{rec.serial}",
                                 details={"reason": reason.value, "subject": rec.subject})
        return repo.set_certificate_revoked(self.db, rec.id, self.clock.now(), reason.value, audit)

    def crl(self, *, next_update_days: int = 90) -> CrlResult:
        """The root CRL (sub-CA revocations), numbered monotonically in the ceremony database's audit log."""
        if not 1 <= next_update_days <= 400:
            raise PolicyViolation("the CRL validity must be 1..400 days")
        root = self.root()
        root_cert = self.authority.ca_certificate(root)
        signer = self.authority.keys.signer(root.key_uri)
        previous = [e for e in repo.list_audit(self.db, action="crl.issue", limit=100_000)]
        number = len(previous) + 1
        now = self.clock.now().replace(microsecond=0)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(root_cert.subject).last_update(now)
                   .next_update(now + dt.timedelta(days=next_update_days))
                   .add_extension(x509.CRLNumber(number), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       root_cert.public_key()), critical=False))  # type: ignore[arg-type]
        assert root.id is not None
        for rec in repo.list_certificates(self.db, status=CertStatus.REVOKED, ca_id=root.id, limit=100_000):
            entry = (x509.RevokedCertificateBuilder().serial_number(int(rec.serial, 16))
                     .revocation_date(rec.revoked_at or now))
            if rec.revocation_reason and rec.revocation_reason != x509.ReasonFlags.unspecified.value:
                entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(rec.revocation_reason)), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(signer, signature_hash(signer, Generation(root.generation)))
        repo.add_audit(self.db, repo.audit_event("ceremony", "crl.issue", "success", target=root.name,
                                                 details={"number": number,
                                                          "revoked": len(list(crl)),
                                                          "next_update": crl.next_update_utc.isoformat()
                                                          if crl.next_update_utc else None}))
        return CrlResult(crl, number)


# --- online side -------------------------------------------------------------------------------------------


def _store_ca_certificate(authority: Authority, ca: CertificateAuthority, issuer_ca_id: int, cert: x509.Certificate,
                          kind: CertKind, actor: str, action: str) -> CertificateAuthority:
    alg = public_key_algorithm(cert.public_key())
    if alg is None:
        raise PolicyViolation("unsupported key algorithm in the certificate")
    assert ca.id is not None
    der = cert.public_bytes(serialization.Encoding.DER)
    record = Certificate(
        ca_id=issuer_ca_id, serial=serial_to_hex(cert.serial_number), kind=kind.value, generation=ca.generation,
        status=CertStatus.VALID, subject=cert.subject.rfc4514_string(), key_algorithm=alg.value,
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=der,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(), owner=ca.name, subject_ca_id=ca.id, actor=actor,
        issued_at=authority.clock.now(),
    )
    audit = repo.audit_event(actor, action, "success", target=ca.name,
                             details={"subject": record.subject, "serial": record.serial,
                                      "fingerprint": record.fingerprint_sha256})
    try:
        stored = repo.import_certificate(authority.db, record, audit)
    except repo.DuplicateSerial:
        raise Conflict("this certificate (or its serial) is already known") from None
    updated = repo.update_ca(authority.db, ca.id, certificate_id=stored.id, status="active")
    authority.forget_cas()  # the authority caches CA rows
    repo.add_issuer_hashes(authority.db, [
        IssuerHash(ca_id=ca.id, algorithm=h.algorithm.value, name_hash=h.name_hash, key_hash=h.key_hash)
        for h in issuer_hashes(cert)
    ])
    return updated


def import_root(authority: Authority, cert_data: bytes, name: str, kind: CertKind, *,
                generation: Generation | None = None, actor: str = "cli") -> CertificateAuthority:
    """Trust an offline root: its certificate only; the CA row is marked ``external_key`` and can never sign."""
    cert = _load_cert(cert_data)
    profile_gen = {CertKind.CSMS_ROOT: Generation.OCPP}.get(kind)
    if cert.subject != cert.issuer:
        raise PolicyViolation("a root certificate is self-issued")
    try:
        cert.verify_directly_issued_by(cert)
    except Exception as exc:  # InvalidSignature, ValueError, TypeError (unsupported algorithm) alike
        raise PolicyViolation(f"the root's self-signature does not verify ({type(exc).__name__})") from None
    generation = generation or profile_gen or _generation_of_root(cert)
    profile = get_profile(kind, generation)
    if not profile.is_root:
        raise PolicyViolation(f"{kind.value} is not a root kind")
    _check_ca_extensions(cert)
    if repo.get_ca_by_name(authority.db, name) is not None:
        raise Conflict(f"a CA named {name!r} already exists")
    alg = public_key_algorithm(cert.public_key())
    if alg is None:
        raise PolicyViolation("unsupported root key algorithm")
    ca = repo.add_ca(authority.db, CertificateAuthority(
        name=name, kind=kind.value, generation=generation.value, key_uri=EXTERNAL_KEY_URI,
        key_algorithm=alg.value, external_key=True, status=PENDING))
    assert ca.id is not None
    return _store_ca_certificate(authority, ca, ca.id, cert, kind, actor, "ca.import-root")


def _generation_of_root(cert: x509.Certificate) -> Generation:
    alg = public_key_algorithm(cert.public_key())
    return Generation.ISO15118_20 if alg in (KeyAlgorithm.P521, KeyAlgorithm.ED448) else Generation.ISO15118_2


def _check_ca_extensions(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        raise PolicyViolation("a CA certificate needs basicConstraints cA=TRUE") from None
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise PolicyViolation("a CA certificate needs basicConstraints cA=TRUE")


def request_sub_ca(authority: Authority, name: str, kind: CertKind, parent: str, subject: x509.Name, *,
                   key_algorithm: KeyAlgorithm | None = None, actor: str = "cli") -> x509.CertificateSigningRequest:
    """Create the sub-CA key in the ONLINE key store and return its CSR for the offline root to sign."""
    parent_ca = authority.ca(parent)
    if not parent_ca.external_key:
        raise PolicyViolation(f"{parent!r} is an online CA; create its sub-CAs with `pnc ca create`")
    generation = Generation(parent_ca.generation)
    profile = get_profile(kind, generation)
    if not profile.is_ca or profile.is_root or profile.issuer_kind is None \
            or profile.issuer_kind.value != parent_ca.kind:
        raise PolicyViolation(f"{kind.value} cannot be issued by {parent_ca.kind} {parent!r}")
    algorithm = key_algorithm or KeyAlgorithm(parent_ca.key_algorithm)
    if algorithm not in profile.key_algorithms:
        raise PolicyViolation(f"key algorithm {algorithm.value} is not allowed for {kind.value}")
    if repo.get_ca_by_name(authority.db, name) is not None:
        raise Conflict(f"a CA named {name!r} already exists")
    key_uri = authority.keys.generate(name, algorithm, scheme=authority.key_scheme)
    repo.add_audit(authority.db, repo.audit_event(actor, "key.generate", "success", target=key_uri,
                                                  details={"ca": name, "algorithm": algorithm.value,
                                                           "for": "offline-signed sub-CA"}))
    repo.add_ca(authority.db, CertificateAuthority(
        name=name, kind=kind.value, generation=generation.value, parent_id=parent_ca.id, key_uri=key_uri,
        key_algorithm=algorithm.value, status=PENDING))
    signer = authority.keys.signer(key_uri)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        signer, signature_hash(signer, generation))
    repo.add_audit(authority.db, repo.audit_event(actor, "ca.request-subca", "success", target=name,
                                                  details={"subject": subject.rfc4514_string(), "parent": parent}))
    return csr


def import_sub_ca(authority: Authority, cert_data: bytes, *, actor: str = "cli") -> CertificateAuthority:
    """Activate a pending sub-CA with the certificate the offline root signed for its key."""
    cert = _load_cert(cert_data)
    _check_ca_extensions(cert)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    match: CertificateAuthority | None = None
    for ca in authority.cas():
        if ca.status != PENDING or ca.external_key:
            continue
        try:
            pub = authority.keys.signer(ca.key_uri).public_key()
        except PkiError:
            continue
        if pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki:
            match = ca
            break
    if match is None:
        raise NotFound("no pending sub-CA holds the key of this certificate (run `pnc ca request-subca` first)")
    assert match.parent_id is not None
    parent = authority.ca_by_id(match.parent_id)
    parent_cert = authority.ca_certificate(parent)
    try:
        cert.verify_directly_issued_by(parent_cert)
    except Exception as exc:  # InvalidSignature, ValueError (name mismatch), TypeError
        raise PolicyViolation(f"the certificate was not issued by {parent.name!r} ({type(exc).__name__})") \
            from None
    now = authority.clock.now()
    if not cert.not_valid_before_utc <= now + dt.timedelta(minutes=5) or cert.not_valid_after_utc <= now:
        raise PolicyViolation("the certificate is not valid now")
    return _store_ca_certificate(authority, match, parent.id or 0, cert, CertKind(match.kind), actor,
                                 "ca.import-subca")
