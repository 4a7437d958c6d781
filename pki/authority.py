"""The CA service: the only code that asks the key store for a CA signer.

Issuance is split the way Boulder does it: pure policy first (CSR and profile checks, size estimate), then a
write-ahead record that reserves the serial, then the signature, then the record is finalised together with its
audit event. A crash between the steps leaves a *pending* record, which recovery marks *aborted*; no certificate
ever leaves this service that the database does not know.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pki import csr_policy
from pki.clock import Clock, SystemClock, utc
from pki.errors import Conflict, InvalidRequest, NotFound, PkiError, PolicyViolation
from pki.hashdata import issuer_hashes, serial_to_hex
from pki.keys.base import KeyAlgorithm, KeyManager, Signer, public_key_algorithm
from pki.profiles import CertKind, Generation, Profile, default_generation, get_profile
from pki.profiles.builder import CertificateTemplate, Urls, check_size, sign_certificate
from pki.profiles.validity import NO_OVERRIDES, ValidityPolicy
from pki.store import audit_chain, bulk, repo
from pki.store.group_commit import GroupCommit
from pki.store.models import Certificate, CertificateAuthority, CertStatus, IssuerHash

SERIAL_BITS = 127  # positive, >= 64 bits of CSPRNG output, always <= 16 octets DER (well under RFC 5280's 20)
_SERIAL_ATTEMPTS = 8


def new_serial() -> int:
    """A fresh serial: 127 random bits with the top bit forced, so every serial has the same length."""
    return secrets.randbits(SERIAL_BITS - 1) | (1 << (SERIAL_BITS - 1))


@dataclass(frozen=True)
class Issued:
    """A certificate that was signed and recorded, with the chain a relying party needs (no root)."""

    record: Certificate
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def serial(self) -> str:
        return self.record.serial

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def chain_pem(self) -> str:
        """Leaf first, then Sub-CA 2, Sub-CA 1 — the order OCPP CertificateSigned expects (root excluded)."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.certificate, *self.chain))


class Authority:
    def __init__(
        self,
        db: repo.Database,
        keys: KeyManager,
        *,
        public_url: str,
        clock: Clock | None = None,
        backdate: dt.timedelta = dt.timedelta(minutes=5),
        key_scheme: str | None = None,
        validity: ValidityPolicy = NO_OVERRIDES,
    ) -> None:
        self.db = db
        self.validity = validity  # deployment limits within each profile's hard maximum
        self.keys = keys
        self.public_url = public_url.rstrip("/")
        self.clock: Clock = clock or SystemClock()
        self.backdate = backdate
        self.key_scheme = key_scheme
        self._ca_cert_cache: dict[int, x509.Certificate] = {}
        self._ca_rows: dict[int | str, tuple[float, CertificateAuthority]] = {}
        self._active_cas: dict[tuple[str, str], tuple[float, list[CertificateAuthority]]] = {}
        self.ca_cache_ttl = 2.0  # seconds: a CA retired/revoked on another instance is seen within this time
        self._lock = threading.Lock()
        # Observers are told of every issuance attempt: (kind, outcome, seconds). The API layer hangs metrics here;
        # the domain does not know Prometheus exists.
        self.observers: list[Callable[[str, str, float], None]] = []
        # Concurrent issuances share their write-ahead and finalise transactions (pki.store.group_commit), on
        # plain rows and bulk statements (pki.store.bulk): no ORM object per write.
        self.reservations: GroupCommit[dict[str, Any], int] = GroupCommit(
            lambda row: bulk.reserve_rows(self.db, [row])[0], lambda rows: bulk.reserve_rows(self.db, rows))
        self.finalisations: GroupCommit[bulk.Signed, Certificate] = GroupCommit(
            lambda one: bulk.finalise_signed(self.db, [one])[0], lambda many: bulk.finalise_signed(self.db, many))

    # --- URLs placed in certificates ---------------------------------------------------------------------

    def urls_for(self, issuer: CertificateAuthority) -> Urls:
        return Urls(
            ocsp=f"{self.public_url}/ocsp",
            ca_issuers=f"{self.public_url}/ca/{issuer.name}.der",
            crl=f"{self.public_url}/crl/{issuer.name}.crl",
        )

    # --- CA lookups --------------------------------------------------------------------------------------

    def _cached_ca(self, key: int | str) -> CertificateAuthority | None:
        hit = self._ca_rows.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ca_cache_ttl:
            return hit[1]
        ca = repo.get_ca(self.db, key) if isinstance(key, int) else repo.get_ca_by_name(self.db, key)
        if ca is not None:
            now = time.monotonic()
            self._ca_rows[_id(ca)] = (now, ca)
            self._ca_rows[ca.name] = (now, ca)
        return ca

    def forget_cas(self) -> None:
        """Drop cached CA rows (after this process changed a CA)."""
        self._ca_rows.clear()
        self._active_cas.clear()

    def active_cas_of_kind(self, kind: str, generation: str) -> list[CertificateAuthority]:
        """Active CAs of a kind and generation, newest first; cached like CA rows (``ca_cache_ttl``) because the
        contract path asks on every installation."""
        key = (kind, generation)
        hit = self._active_cas.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ca_cache_ttl:
            return hit[1]
        rows = repo.active_cas_of_kind(self.db, kind, generation)
        self._active_cas[key] = (time.monotonic(), rows)
        return rows

    def ca(self, name: str) -> CertificateAuthority:
        ca = self._cached_ca(name)
        if ca is None:
            raise NotFound(f"no CA named {name!r}")
        return ca

    def ca_by_id(self, ca_id: int) -> CertificateAuthority:
        ca = self._cached_ca(ca_id)
        if ca is None:
            raise NotFound(f"no CA with id {ca_id}")
        return ca

    def cas(self) -> list[CertificateAuthority]:
        return repo.list_cas(self.db)

    def ca_certificate(self, ca: CertificateAuthority) -> x509.Certificate:
        assert ca.id is not None
        cached = self._ca_cert_cache.get(ca.id)
        if cached is not None:
            return cached
        if ca.certificate_id is None:
            raise NotFound(f"CA {ca.name!r} has no certificate yet")
        rec = repo.get_certificate(self.db, ca.certificate_id)
        if rec is None or rec.der is None:
            raise NotFound(f"certificate of CA {ca.name!r} is missing")
        cert = x509.load_der_x509_certificate(rec.der)
        self._ca_cert_cache[ca.id] = cert
        return cert

    def issuer_for(self, kind: CertKind, generation: Generation) -> CertificateAuthority:
        profile = get_profile(kind, generation)
        if profile.issuer_kind is None:
            raise PolicyViolation(f"{kind.value} is a root; it is created, not issued from a CSR")
        key = f"issuer-of:{profile.issuer_kind.value}:{generation.value}"
        hit = self._ca_rows.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ca_cache_ttl:
            return hit[1]
        candidates = repo.active_cas_of_kind(self.db, profile.issuer_kind.value, generation.value)
        # a CA whose creation was interrupted (key and row, no certificate yet) must not take over issuance
        candidates = [c for c in candidates if c.certificate_id is not None]
        if candidates:
            self._ca_rows[key] = (time.monotonic(), candidates[0])
        if not candidates:
            raise NotFound(f"no active {profile.issuer_kind.value} CA for {generation.value}; run `pnc init`")
        return candidates[0]

    def chain(self, issuer: CertificateAuthority) -> tuple[x509.Certificate, ...]:
        """Issuer and its parents up to, not including, the root."""
        out: list[x509.Certificate] = []
        current: CertificateAuthority | None = issuer
        while current is not None and current.parent_id is not None:
            out.append(self.ca_certificate(current))
            current = self.ca_by_id(current.parent_id)
        return tuple(out)

    def root_of(self, ca: CertificateAuthority) -> CertificateAuthority:
        current = ca
        while current.parent_id is not None:
            current = self.ca_by_id(current.parent_id)
        return current

    # --- CA creation -------------------------------------------------------------------------------------

    def create_root(
        self,
        name: str,
        kind: CertKind,
        generation: Generation,
        subject: x509.Name,
        *,
        key_algorithm: KeyAlgorithm,
        validity_days: int | None = None,
        actor: str = "system",
    ) -> CertificateAuthority:
        profile = get_profile(kind, generation)
        if not profile.is_root:
            raise PolicyViolation(f"{kind.value} is not a root profile")
        self._check_algorithm(profile, key_algorithm)
        if repo.get_ca_by_name(self.db, name) is not None:
            raise Conflict(f"a CA named {name!r} already exists")
        key_uri = self.keys.generate(name, key_algorithm, scheme=self.key_scheme)
        self._audit_key(actor, key_uri, name, key_algorithm)
        ca = repo.add_ca(
            self.db,
            CertificateAuthority(name=name, kind=kind.value, generation=generation.value, key_uri=key_uri,
                                 key_algorithm=key_algorithm.value),
        )
        signer = self.keys.signer(key_uri)
        self._issue(profile, subject, signer.public_key(), issuer=ca, issuer_name=subject,
                    issuer_public_key=signer.public_key(), issuer_signer=signer, validity_days=validity_days,
                    owner=name, actor=actor, request_id=None, subject_ca=ca)
        return self.ca(name)

    def create_sub_ca(
        self,
        name: str,
        kind: CertKind,
        parent: str,
        subject: x509.Name,
        *,
        key_algorithm: KeyAlgorithm | None = None,
        validity_days: int | None = None,
        actor: str = "system",
    ) -> CertificateAuthority:
        parent_ca = self.ca(parent)
        self._check_online(parent_ca)
        generation = Generation(parent_ca.generation)
        profile = get_profile(kind, generation)
        if not profile.is_ca or profile.is_root:
            raise PolicyViolation(f"{kind.value} is not a sub-CA profile")
        if profile.issuer_kind is not None and profile.issuer_kind.value != parent_ca.kind:
            raise PolicyViolation(f"{kind.value} must be issued by a {profile.issuer_kind.value}, "
                                  f"not by {parent_ca.kind} {parent!r}")
        algorithm = key_algorithm or KeyAlgorithm(parent_ca.key_algorithm)
        self._check_algorithm(profile, algorithm)
        if repo.get_ca_by_name(self.db, name) is not None:
            raise Conflict(f"a CA named {name!r} already exists")
        key_uri = self.keys.generate(name, algorithm, scheme=self.key_scheme)
        self._audit_key(actor, key_uri, name, algorithm)
        ca = repo.add_ca(
            self.db,
            CertificateAuthority(name=name, kind=kind.value, generation=generation.value, parent_id=parent_ca.id,
                                 key_uri=key_uri, key_algorithm=algorithm.value),
        )
        public_key = self.keys.signer(key_uri).public_key()
        self.issue_for_public_key(kind, subject, public_key, issuer=parent_ca, validity_days=validity_days,
                                  owner=name, actor=actor, subject_ca=ca)
        return self.ca(name)

    @staticmethod
    def _check_online(ca: CertificateAuthority) -> None:
        if ca.external_key:
            raise PolicyViolation(f"CA {ca.name!r} is an offline root: its key is not here; sign with "
                                  "`pnc ceremony sign-subca` on the ceremony machine", code="OfflineKey")

    def _audit_key(self, actor: str, key_uri: str, ca_name: str, algorithm: KeyAlgorithm) -> None:
        repo.add_audit(self.db, repo.audit_event(actor, "key.generate", "success", target=key_uri,
                                                  details={"ca": ca_name, "algorithm": algorithm.value}))

    @staticmethod
    def _check_algorithm(profile: Profile, algorithm: KeyAlgorithm) -> None:
        if algorithm not in profile.key_algorithms:
            raise PolicyViolation(f"key algorithm {algorithm.value} is not allowed for {profile.kind.value} "
                                  f"({profile.generation.value})")

    # --- issuance ----------------------------------------------------------------------------------------

    def issue_from_csr(
        self,
        csr_data: bytes | str,
        kind: CertKind,
        *,
        generation: Generation | None = None,
        issuer: str | None = None,
        expect: csr_policy.SubjectExpectation | None = None,
        validity_days: int | None = None,
        owner: str | None = None,
        actor: str = "system",
        request_id: str | None = None,
    ) -> Issued:
        """Check the CSR against the profile (and the requester's identity), then issue."""
        started = time.perf_counter()
        outcome = "error"
        try:
            issued = self._issue_from_csr(csr_data, kind, generation=generation, issuer=issuer, expect=expect,
                                          validity_days=validity_days, owner=owner, actor=actor,
                                          request_id=request_id)
            outcome = "issued"
            return issued
        except PolicyViolation:
            outcome = "refused"
            raise
        except InvalidRequest:
            outcome = "invalid"
            raise
        finally:
            for observer in self.observers:
                observer(kind.value, outcome, time.perf_counter() - started)

    def _issue_from_csr(
        self,
        csr_data: bytes | str,
        kind: CertKind,
        *,
        generation: Generation | None,
        issuer: str | None,
        expect: csr_policy.SubjectExpectation | None,
        validity_days: int | None,
        owner: str | None,
        actor: str,
        request_id: str | None,
    ) -> Issued:
        csr = csr_policy.load_csr(csr_data)
        issuer_ca = self.ca(issuer) if issuer else None
        gen = generation or (Generation(issuer_ca.generation) if issuer_ca else default_generation(kind))
        profile = get_profile(kind, gen)
        if profile.is_ca:
            raise PolicyViolation("CA certificates are created with `pnc ca create`, not from CSRs")
        view = csr_policy.CsrView(csr)
        try:
            csr_policy.evaluate(view, profile, expect)
        except PkiError as exc:
            self._audit_refusal(actor, kind, exc, request_id, view.subject.rfc4514_string())
            raise
        dns = (view.attrs["CN"][0],) if kind is CertKind.CSMS_SERVER else ()
        return self.issue_for_public_key(kind, view.subject, view.public_key(), generation=gen,
                                         issuer=issuer_ca, validity_days=validity_days, owner=owner, actor=actor,
                                         request_id=request_id, dns_names=tuple(str(d) for d in dns))

    def issue_for_public_key(
        self,
        kind: CertKind,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        *,
        generation: Generation | None = None,
        issuer: CertificateAuthority | None = None,
        validity_days: int | None = None,
        owner: str | None = None,
        actor: str = "system",
        request_id: str | None = None,
        subject_ca: CertificateAuthority | None = None,
        dns_names: tuple[str, ...] = (),
        also: bulk.Finalised | None = None,
    ) -> Issued:
        """Issue for a key the service already trusts (its own CA keys, contract keys it generated, OCSP signers).

        ``also(connection, record)`` runs in the transaction that makes the record valid and may return an audit
        event to chain there (see :class:`bulk.Signed`)."""
        gen = generation or (Generation(issuer.generation) if issuer else default_generation(kind))
        profile = get_profile(kind, gen) if kind is not CertKind.OCSP_SIGNER else _ocsp_profile(gen, public_key)
        issuer_ca = self.checked_issuer(profile, issuer)
        alg = public_key_algorithm(public_key)
        if alg is None or alg not in profile.key_algorithms:
            raise PolicyViolation(f"key algorithm {alg.value if alg else 'unknown'} is not allowed for "
                                  f"{kind.value} ({gen.value})", code="InvalidKey")
        issuer_cert = self.ca_certificate(issuer_ca)
        signer = self.keys.signer(issuer_ca.key_uri)
        issued = self._issue(profile, subject, public_key, issuer=issuer_ca, issuer_name=issuer_cert.subject,
                             issuer_public_key=issuer_cert.public_key(), issuer_signer=signer,
                             validity_days=validity_days, owner=owner, actor=actor, request_id=request_id,
                             subject_ca=subject_ca, dns_names=dns_names, not_after_cap=issuer_cert.not_valid_after_utc,
                             also=also)
        return Issued(issued.record, issued.certificate, self.chain(issuer_ca))

    def checked_issuer(self, profile: Profile, issuer: CertificateAuthority | None) -> CertificateAuthority:
        """The CA that issues ``profile`` (the named one, or the active issuer), refused unless it may: active,
        same generation, the kind the profile names, and its key online here."""
        issuer_ca = issuer or self.issuer_for(profile.kind, profile.generation)
        if issuer_ca.status != "active":
            raise PolicyViolation(f"CA {issuer_ca.name!r} is {issuer_ca.status} and cannot issue")
        if issuer_ca.generation != profile.generation.value:
            raise PolicyViolation(f"CA {issuer_ca.name!r} is {issuer_ca.generation}, not {profile.generation.value}")
        if profile.issuer_kind is not None and profile.issuer_kind.value != issuer_ca.kind:
            raise PolicyViolation(f"{profile.kind.value} must be issued by a {profile.issuer_kind.value} CA, "
                                  f"not {issuer_ca.kind} {issuer_ca.name!r}")
        self._check_online(issuer_ca)
        return issuer_ca

    def validity_window(self, profile: Profile, validity_days: int | None,
                        not_after_cap: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
        """(notBefore, notAfter) for a certificate issued now: the requested or default days within the
        deployment's and the profile's maximum, backdated, and never outliving the issuer."""
        default_days, max_days = self.validity.limits(profile)
        days = validity_days if validity_days is not None else default_days
        if days <= 0 or days > max_days:
            raise PolicyViolation(f"validity {days} days is outside 1..{max_days} for {profile.kind.value}")
        now = self.clock.now().replace(microsecond=0)
        not_before = now - self.backdate  # OCPP 2.0.1 errata: stations reject certificates "from the future"
        not_after = now + dt.timedelta(days=days)
        if not_after_cap is not None and not_after > not_after_cap:
            not_after = not_after_cap  # never outlive the issuer (RFC 5280 path validation would fail anyway)
        return not_before, not_after

    def _issue(
        self,
        profile: Profile,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        *,
        issuer: CertificateAuthority,
        issuer_name: x509.Name,
        issuer_public_key: CertificatePublicKeyTypes,
        issuer_signer: Signer,
        validity_days: int | None,
        owner: str | None,
        actor: str,
        request_id: str | None,
        subject_ca: CertificateAuthority | None = None,
        dns_names: tuple[str, ...] = (),
        not_after_cap: dt.datetime | None = None,
        also: bulk.Finalised | None = None,
    ) -> Issued:
        not_before, not_after = self.validity_window(profile, validity_days, not_after_cap)
        alg = public_key_algorithm(public_key)
        assert alg is not None
        template = CertificateTemplate(
            profile=profile, subject=subject, public_key=public_key, serial=new_serial(), not_before=not_before,
            not_after=not_after, issuer_name=issuer_name, issuer_public_key=issuer_public_key,
            urls=self.urls_for(issuer), dns_names=dns_names,
        )
        try:
            check_size(template, issuer_signer)
        except PkiError as exc:
            self._audit_refusal(actor, profile.kind, exc, request_id, subject.rfc4514_string())
            raise
        record_id, row = self._reserve(template, issuer, alg, owner, actor, request_id)
        try:
            template = dataclasses.replace(template, serial=int(row["serial"], 16))
            cert = sign_certificate(template, issuer_signer)
        except Exception as exc:
            repo.abort_certificate(self.db, record_id, f"signing failed: {type(exc).__name__}")
            if isinstance(exc, PkiError):
                raise
            raise PkiError("signing failed", code="SigningFailed") from None
        der = cert.public_bytes(serialization.Encoding.DER)
        fingerprint, issued_at = cert.fingerprint(hashes.SHA256()).hex(), self.clock.now()
        subject_ca_id = subject_ca.id if subject_ca else None
        change = {"record_id": record_id, "der": der, "fingerprint_sha256": fingerprint, "issued_at": issued_at,
                  "subject_ca_id": subject_ca_id}
        # The one ORM object of the issuance: what the caller gets back (and ``also`` reads). Built before the
        # commit, returned only after it.
        record = Certificate(id=record_id, **{**row, "status": CertStatus.VALID}, der=der,
                             fingerprint_sha256=fingerprint, issued_at=issued_at, subject_ca_id=subject_ca_id)
        audit = audit_chain.new_row(actor, "certificate.issue", "success", dt.datetime.now(dt.UTC),
                                    target=f"{issuer.name}/{row['serial']}", request_id=request_id,
                                    details={"kind": profile.kind.value, "subject": row["subject"], "owner": owner})
        final = self.finalisations.submit(bulk.Signed(record, change, audit, also))
        if subject_ca is not None:
            repo.update_ca(self.db, _id(subject_ca), certificate_id=final.id)
            self.forget_cas()
            repo.add_issuer_hashes(self.db, [
                IssuerHash(ca_id=_id(subject_ca), algorithm=h.algorithm.value, name_hash=h.name_hash,
                           key_hash=h.key_hash)
                for h in issuer_hashes(cert)
            ])
        return Issued(final, cert)

    def _reserve(self, template: CertificateTemplate, issuer: CertificateAuthority, alg: KeyAlgorithm,
                 owner: str | None, actor: str, request_id: str | None) -> tuple[int, dict[str, Any]]:
        """The write-ahead record (pending, serial reserved) as its id and the plain row stored."""
        row: dict[str, Any] = {
            "ca_id": _id(issuer), "serial": "", "kind": template.profile.kind.value,
            "generation": template.profile.generation.value, "status": CertStatus.PENDING,
            "subject": template.subject.rfc4514_string(), "key_algorithm": alg.value,
            "not_before": template.not_before, "not_after": template.not_after, "owner": owner, "actor": actor,
            "request_id": request_id, "created_at": dt.datetime.now(dt.UTC),
        }
        for _ in range(_SERIAL_ATTEMPTS):
            row["serial"] = serial_to_hex(new_serial())
            try:
                return self.reservations.submit(row), row
            except repo.DuplicateSerial:
                continue
        raise Conflict("could not reserve a unique serial number")  # ~2^-126 per attempt: a broken RNG

    def _audit_refusal(self, actor: str, kind: CertKind, exc: PkiError, request_id: str | None, subject: str) -> None:
        repo.add_audit(self.db, repo.audit_event(actor, "certificate.issue", "refused", target=kind.value,
                                                  request_id=request_id,
                                                  details={"reason": exc.code, "message": exc.message,
                                                           "subject": subject}))

    # --- maintenance -------------------------------------------------------------------------------------

    def recover_pending(self, older_than: dt.timedelta = dt.timedelta(minutes=5)) -> int:
        """Mark write-ahead records that never got signed (a crash mid-issuance) as aborted."""
        return repo.abort_stale_pending(self.db, self.clock.now() - older_than)

    def certificate(self, cert_id: int) -> Certificate:
        rec = repo.get_certificate(self.db, cert_id)
        if rec is None or rec.status in (CertStatus.PENDING, CertStatus.ABORTED):
            raise NotFound(f"no certificate with id {cert_id}")
        return rec

    def certificate_by_serial(self, serial: str, *, ca: str | None = None) -> Certificate:
        serial_hex = serial.lower().removeprefix("0x").lstrip("0") or "0"
        if ca is not None:
            rec = repo.get_certificate_by_serial(self.db, _id(self.ca(ca)), serial_hex)
            found = [rec] if rec else []
        else:
            found = repo.find_certificates_by_serial(self.db, serial_hex)
        found = [r for r in found if r.status not in (CertStatus.PENDING, CertStatus.ABORTED)]
        if not found:
            raise NotFound(f"no certificate with serial {serial_hex}")
        if len(found) > 1:
            raise InvalidRequest(f"serial {serial_hex} exists under several CAs; name the CA")
        return found[0]

    def is_expired(self, record: Certificate) -> bool:
        return utc(record.not_after) < self.clock.now()


def _ocsp_profile(generation: Generation, public_key: CertificatePublicKeyTypes) -> Profile:
    from pki.profiles import ocsp_signer_profile

    alg = public_key_algorithm(public_key)
    return ocsp_signer_profile(generation, frozenset({alg}) if alg else frozenset())


def _id(obj: Certificate | CertificateAuthority) -> int:
    if obj.id is None:
        raise PkiError("record has no id")
    return obj.id
