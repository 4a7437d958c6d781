"""The OCSP service: pre-signed response cache, on-demand signing, delegated signers, background refresh.

Sources of an answer, in order (Boulder's chain, simplified):
1. the in-memory copy of the pre-signed response (hot path: no database, no key, no signing);
2. on a miss, the database status of the certificate, signed on demand and stored for everyone;
3. when the database is unreachable: the still-valid pre-signed response if we have one (stale-but-valid),
   otherwise ``tryLater`` — never a "good" we cannot back with a record.

Pre-signed responses are kept for SHA-1 (RFC 5019 clients) and SHA-256 (RFC 9919, OCPP) CertIDs of every valid or
revoked, unexpired certificate; SHA-384/512 responses are signed on first request and then refreshed like the
others. The shared table (``ocsp_response``) is the source of truth for every instance; memory is a copy that a
poller keeps current (:meth:`OcspService.sync_from_store`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import format_datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.authority import Authority
from pki.clock import utc
from pki.errors import PkiError
from pki.hashdata import CertificateHashData, HashAlgorithm
from pki.keys.base import KeyAlgorithm
from pki.ocsp.request import CertId, MalformedRequest, OcspRequest, parse_request
from pki.ocsp.response import (
    MALFORMED,
    TRY_LATER,
    UNAUTHORIZED,
    ResponderIdentity,
    build_multi,
    build_single,
)
from pki.profiles import CertKind
from pki.revocation import UNKNOWN, EffectiveStatus, RevocationEvent, effective_status
from pki.store import ocsp_repo
from pki.store.models import CaStatus, CertificateAuthority
from pki.store.ocsp_models import OcspSigner

log = logging.getLogger("pnc.ocsp")

PRESIGN_ALGORITHMS = (HashAlgorithm.SHA1, HashAlgorithm.SHA256)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class OcspPolicy:
    """Validity and refresh periods. Defaults follow what stations do (libocpp refreshes every 167 h)."""

    response_validity: dt.timedelta = dt.timedelta(days=8)  # nextUpdate - thisUpdate
    refresh_after: dt.timedelta = dt.timedelta(days=1)  # re-sign when older: >= 7 days left at any time
    signer_validity_days: int = 30
    signer_renew_before: dt.timedelta = dt.timedelta(days=12)  # > response_validity: no response outlives its signer
    sign_with_ca_key: bool = False
    max_age: dt.timedelta = dt.timedelta(hours=1)  # HTTP cache cap (RFC 5019 §6.2 allows less than nextUpdate)
    memory_max_entries: int = 2_000_000
    sync_overlap: dt.timedelta = dt.timedelta(seconds=5)  # re-read window for rows committed out of order

    def __post_init__(self) -> None:
        if self.signer_renew_before <= self.response_validity:
            raise ValueError("signer_renew_before must exceed response_validity")
        if dt.timedelta(days=self.signer_validity_days) <= self.signer_renew_before:
            raise ValueError("signer_validity_days must exceed signer_renew_before")
        if self.refresh_after >= self.response_validity:
            raise ValueError("refresh_after must be shorter than response_validity")


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A signed response plus the HTTP metadata RFC 5019 §6.2 wants, computed once at signing time."""

    der: bytes
    status: str
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    updated_at: dt.datetime
    etag: str
    last_modified: str
    expires: str
    next_update_ts: float

    @classmethod
    def of(cls, der: bytes, status: str, this_update: dt.datetime, next_update: dt.datetime,
           produced_at: dt.datetime, updated_at: dt.datetime) -> CachedResponse:
        tu, nu, pa = utc(this_update), utc(next_update), utc(produced_at)
        return cls(der, status, tu, nu, pa, utc(updated_at),
                   '"' + hashlib.sha1(der).hexdigest() + '"',  # noqa: S324 - RFC 5019 §6.2 ETag suggestion
                   format_datetime(pa, usegmt=True), format_datetime(nu, usegmt=True), nu.timestamp())


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """What the HTTP layer sends: DER bytes and, for cacheable successful answers, the cache metadata."""

    der: bytes
    successful: bool
    cached: CachedResponse | None = None  # set when the answer may be cached by HTTP caches
    cert_status: str | None = None


@dataclass
class RefreshStats:
    signed: int = 0
    signers_issued: int = 0
    failures: int = 0
    skipped_cas: list[str] = field(default_factory=list)


CacheKey = tuple[int, str, str]  # (ca_id, serial hex, hash algorithm)


REQUEST_KEY_CACHE_MAX = 200_000  # ~100 bytes of request DER each: ~30 MB at most


class OcspService:
    """Answers OCSP for every CA of ``authority``. Thread-safe; HTTP calls :meth:`fast`, then :meth:`respond`."""

    def __init__(self, authority: Authority, policy: OcspPolicy | None = None) -> None:
        self.authority = authority
        self.policy = policy or OcspPolicy()
        self._memory: dict[CacheKey, CachedResponse] = {}
        # request DER -> the cache key it resolved to: a repeated request (RFC 5019 clients send identical bytes)
        # skips parsing and the issuer lookup. Bounded; rebuilt from scratch whenever the issuer table reloads.
        self._request_keys: dict[bytes, CacheKey] = {}
        self._issuers: dict[tuple[str, bytes, bytes], tuple[int, ...]] = {}
        self._issuer_hashes: dict[tuple[int, str], tuple[bytes, bytes]] = {}
        self._negative_issuers: dict[tuple[str, bytes, bytes], float] = {}
        self._revoked_cas: dict[int, tuple[dt.datetime | None, str | None]] = {}
        self._signers: dict[int, OcspSigner] = {}
        self._identities: dict[tuple[int, int | None], ResponderIdentity] = {}
        self._last_sync: dt.datetime = _EPOCH
        self._last_poll: dt.datetime = _EPOCH  # when the previous sync read the table (our clock)
        self._lock = threading.RLock()
        self._signer_lock = threading.Lock()
        self._loaded = False

    def _now(self) -> dt.datetime:
        return self.authority.clock.now()

    # --- state loading -------------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)load issuer hashes, revoked CAs and signers from the database."""
        db = self.authority.db
        issuers: dict[tuple[str, bytes, bytes], list[int]] = {}
        hashes_by_ca: dict[tuple[int, str], tuple[bytes, bytes]] = {}
        for row in ocsp_repo.all_issuer_hashes(db):
            nh, kh = bytes.fromhex(row.name_hash), bytes.fromhex(row.key_hash)
            issuers.setdefault((row.algorithm, nh, kh), []).append(row.ca_id)
            hashes_by_ca[(row.ca_id, row.algorithm)] = (nh, kh)
        revoked = ocsp_repo.revoked_ca_ids(db)
        signers = ocsp_repo.newest_signers(db)
        with self._lock:
            self._issuers = {k: tuple(v) for k, v in issuers.items()}
            self._issuer_hashes = hashes_by_ca
            self._revoked_cas = revoked
            self._signers = signers
            self._negative_issuers.clear()
            self._request_keys.clear()
            self._loaded = True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _issuer_ids(self, cid: CertId) -> tuple[int, ...]:
        key = (cid.algorithm.value, cid.issuer_name_hash, cid.issuer_key_hash)
        found = self._issuers.get(key)
        if found is not None:
            return found
        now = self._now().timestamp()
        if self._negative_issuers.get(key, 0.0) > now:
            return ()
        self.load()  # a CA created since we last looked (or another instance created it)
        found = self._issuers.get(key)
        if found is None:
            if len(self._negative_issuers) > 10_000:
                self._negative_issuers.clear()
            self._negative_issuers[key] = now + 30.0
            return ()
        return found

    # --- the hot path ---------------------------------------------------------------------------------------

    @property
    def cached_count(self) -> int:
        """Pre-signed responses held in memory (a metric)."""
        return len(self._memory)

    def fast(self, request_der: bytes) -> CachedResponse | None:
        """Memory-only answer for a one-CertID request without nonce, or None (then call :meth:`respond`)."""
        key = self._request_keys.get(request_der)
        if key is not None:
            entry = self._memory.get(key)
            if entry is not None and entry.next_update_ts > self._now().timestamp():
                return entry
        try:
            req = parse_request(request_der)
        except MalformedRequest:
            return None
        if req.nonce is not None or len(req.cert_ids) != 1:
            return None
        found = self._cached_key(req.cert_ids[0])
        if found is None:
            return None
        if len(self._request_keys) >= REQUEST_KEY_CACHE_MAX:
            self._request_keys.clear()
        self._request_keys[request_der] = found[0]
        return found[1]

    def _cached(self, cid: CertId) -> CachedResponse | None:
        found = self._cached_key(cid)
        return found[1] if found is not None else None

    def _cached_key(self, cid: CertId) -> tuple[CacheKey, CachedResponse] | None:
        ids = self._issuers.get((cid.algorithm.value, cid.issuer_name_hash, cid.issuer_key_hash))
        if not ids:
            return None
        serial = cid.serial_hex
        alg = cid.algorithm.value
        now = self._now().timestamp()
        for ca_id in ids:
            key = (ca_id, serial, alg)
            entry = self._memory.get(key)
            if entry is not None and entry.next_update_ts > now:
                return key, entry
        return None

    # --- the full path ----------------------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> OcspAnswer:
        """Answer any request bytes; never raises. May touch the database and sign (call it off the event loop)."""
        try:
            req = parse_request(request_der)
        except MalformedRequest:
            return OcspAnswer(MALFORMED, False)
        return self.respond_request(req)

    def respond_request(self, req: OcspRequest) -> OcspAnswer:
        if req.nonce is None and len(req.cert_ids) == 1:
            hit = self._cached(req.cert_ids[0])
            if hit is not None:
                return OcspAnswer(hit.der, True, hit, hit.status)
        try:
            return self._respond_uncached(req)
        except Exception as exc:  # database down, key store unavailable: never a 500, never a guessed "good"
            log.warning("OCSP answer failed (%s); answering tryLater", type(exc).__name__)
            return OcspAnswer(TRY_LATER, False)

    def _respond_uncached(self, req: OcspRequest) -> OcspAnswer:
        self._ensure_loaded()
        resolved: list[tuple[CertId, tuple[int, ...]]] = [(cid, self._issuer_ids(cid)) for cid in req.cert_ids]
        primary = next((ids[0] for _cid, ids in resolved if ids), None)
        if primary is None:
            return OcspAnswer(UNAUTHORIZED, False)
        identity = self._identity(primary)
        if identity is None:
            return OcspAnswer(UNAUTHORIZED, False)
        snapshot = self._now()  # before the status is read: see _store(unless_changed_after=...)
        now = snapshot.replace(microsecond=0)
        next_update = now + self.policy.response_validity
        items: list[tuple[CertId, EffectiveStatus, int | None]] = []
        for cid, ids in resolved:
            if primary not in ids:
                # Signed by the primary issuer's responder, which is not authorised for another CA's certificates
                # (RFC 6960 §4.2.2.2): such a CertID is "unknown" here; ask with one CertID per issuer.
                items.append((cid, UNKNOWN, None))
                continue
            row = ocsp_repo.cert_status_row(self.authority.db, primary, cid.serial_hex)
            items.append((cid, effective_status(row, self._revoked_cas), primary))
        if len(items) == 1:
            cid, status, _ = items[0]
            der, produced = build_single(cid, status, now, next_update, identity, req.nonce)
            cached = None
            if req.nonce is None and status.status != "unknown":
                cached = self._store(primary, cid.serial_hex, cid.algorithm, der, status.status, now, next_update,
                                     identity.signer_id, produced, unless_changed_after=snapshot)
            return OcspAnswer(der, True, cached, status.status)
        der = build_multi([(c, s) for c, s, _ in items], now, next_update, identity, req.nonce, now)
        return OcspAnswer(der, True, None, None)

    def respond_to_hash_data(self, hash_data: CertificateHashData) -> bytes:
        """DER OCSPResponse for OCPP CertificateHashData (GetCertificateStatus, Authorize): same cache, same rules.

        Returns ``unauthorized`` for issuers we do not serve, ``tryLater`` if the database is down and nothing
        valid is cached; the caller maps non-successful responses to OCPP ``Failed``.
        """
        cid = CertId(hash_data.hash_algorithm, bytes.fromhex(hash_data.issuer_name_hash),
                     bytes.fromhex(hash_data.issuer_key_hash), int(hash_data.serial_number, 16))
        return self.respond_request(OcspRequest((cid,), None)).der

    def status_of_hash_data(self, hash_data: CertificateHashData) -> OcspAnswer:
        cid = CertId(hash_data.hash_algorithm, bytes.fromhex(hash_data.issuer_name_hash),
                     bytes.fromhex(hash_data.issuer_key_hash), int(hash_data.serial_number, 16))
        return self.respond_request(OcspRequest((cid,), None))

    # --- storing ----------------------------------------------------------------------------------------------

    def _store(self, ca_id: int, serial: str, algorithm: HashAlgorithm, der: bytes, status: str,
               this_update: dt.datetime, next_update: dt.datetime, signer_id: int | None, produced_at: dt.datetime,
               *, unless_changed_after: dt.datetime | None = None) -> CachedResponse:
        now = self._now()
        row = {"ca_id": ca_id, "serial": serial, "hash_algorithm": algorithm.value, "cert_status": status,
               "der": der, "this_update": this_update, "next_update": next_update, "produced_at": produced_at,
               "signer_id": signer_id, "updated_at": now}
        written = ocsp_repo.upsert_responses(self.authority.db, [row], unless_changed_after=unless_changed_after)
        entry = CachedResponse.of(der, status, this_update, next_update, produced_at, now)
        if (ca_id, serial, algorithm.value) in written:
            self._remember((ca_id, serial, algorithm.value), entry)
        return entry  # not written: a newer answer (e.g. a revocation) is stored; this one is still correct for now

    def _remember(self, key: CacheKey, entry: CachedResponse) -> None:
        memory = self._memory
        if key not in memory and len(memory) >= self.policy.memory_max_entries:
            try:
                memory.pop(next(iter(memory)))  # oldest insertion first; the table still has it
            except (StopIteration, KeyError, RuntimeError):
                pass
        memory[key] = entry

    def memory_size(self) -> int:
        return len(self._memory)

    # --- signers -----------------------------------------------------------------------------------------------

    def _identity(self, ca_id: int) -> ResponderIdentity | None:
        ca = self.authority.ca_by_id(ca_id)
        if ca.external_key or ca.certificate_id is None:
            return None  # offline root: we hold no key that may answer for it
        if self.policy.sign_with_ca_key:
            return self._ca_identity(ca)
        signer = self._signers.get(ca_id)
        horizon = self._now() + self.policy.response_validity
        if signer is None or utc(signer.not_after) < horizon:
            signer = self.ensure_signer(ca)
        if signer is None:
            return self._ca_identity(ca)  # e.g. a revoked CA cannot issue a new signer; its own key may answer
        key = (ca_id, signer.id)
        identity = self._identities.get(key)
        if identity is None:
            rec = self.authority.certificate(signer.certificate_id)
            assert rec.der is not None
            identity = ResponderIdentity(self.authority.keys.signer(signer.key_uri),
                                         x509.load_der_x509_certificate(rec.der), True, signer.id)
            self._identities[key] = identity
        return identity

    def _ca_identity(self, ca: CertificateAuthority) -> ResponderIdentity:
        assert ca.id is not None
        key = (ca.id, None)
        identity = self._identities.get(key)
        if identity is None:
            identity = ResponderIdentity(self.authority.keys.signer(ca.key_uri),
                                         self.authority.ca_certificate(ca), False, None)
            self._identities[key] = identity
        return identity

    def ensure_signer(self, ca: CertificateAuthority) -> OcspSigner | None:
        """The CA's delegated signer, issued (or renewed) when missing or within ``signer_renew_before`` of expiry."""
        assert ca.id is not None
        with self._signer_lock:
            now = self._now()
            current = self._signers.get(ca.id)
            if current is not None and utc(current.not_after) - now > self.policy.signer_renew_before:
                return current
            fresh = ocsp_repo.newest_signers(self.authority.db).get(ca.id)  # another instance may have renewed
            if fresh is not None and utc(fresh.not_after) - now > self.policy.signer_renew_before:
                self._signers[ca.id] = fresh
                return fresh
            if ca.status != CaStatus.ACTIVE or ca.external_key:
                return current if current is not None and utc(current.not_after) > now else None
            try:
                signer = self._issue_signer(ca, now)
            except PkiError as exc:
                log.warning("could not issue an OCSP signer for %s: %s", ca.name, exc.message)
                return current if current is not None and utc(current.not_after) > now else None
            self._signers[ca.id] = signer
            return signer

    def _issue_signer(self, ca: CertificateAuthority, now: dt.datetime) -> OcspSigner:
        ca_cert = self.authority.ca_certificate(ca)
        label = f"ocsp-{ca.name}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        key_uri = self.authority.keys.generate(label, KeyAlgorithm(ca.key_algorithm),
                                               scheme=self.authority.key_scheme)
        public_key = self.authority.keys.signer(key_uri).public_key()
        attrs: list[x509.NameAttribute[str | bytes]] = [
            x509.NameAttribute(NameOID.COMMON_NAME, f"OCSP {ca.name}"[:64])]
        for oid in (NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME):
            attrs += ca_cert.subject.get_attributes_for_oid(oid)
        issued = self.authority.issue_for_public_key(
            CertKind.OCSP_SIGNER, x509.Name(attrs), public_key, issuer=ca,
            validity_days=self.policy.signer_validity_days, owner=f"ocsp:{ca.name}", actor="ocsp-responder")
        assert issued.record.id is not None
        return ocsp_repo.add_signer(self.authority.db, OcspSigner(
            ca_id=ca.id or 0, certificate_id=issued.record.id, key_uri=key_uri,
            not_before=issued.certificate.not_valid_before_utc, not_after=issued.certificate.not_valid_after_utc))

    def ensure_signers(self) -> int:
        """Issue or renew the delegated signer of every active CA; returns how many were issued."""
        if self.policy.sign_with_ca_key:
            return 0
        issued = 0
        for ca in self.authority.cas():
            if ca.status != CaStatus.ACTIVE or ca.external_key or ca.certificate_id is None or ca.id is None:
                continue
            before = self._signers.get(ca.id)
            after = self.ensure_signer(ca)
            if after is not None and (before is None or before.id != after.id):
                issued += 1
        return issued

    # --- pre-signing and refresh ---------------------------------------------------------------------------

    def refresh(self, *, limit: int | None = None) -> RefreshStats:
        """One maintenance pass: signers, then (re)sign every response that is missing, stale or getting old."""
        stats = RefreshStats()
        self.load()
        stats.signers_issued = self.ensure_signers()
        db = self.authority.db
        snapshot = self._now()  # statuses are read after this; rows written later are newer than our view
        now = snapshot.replace(microsecond=0)
        refresh_before = now - self.policy.refresh_after
        existing = {(m[0], m[1], m[2]): m for m in ocsp_repo.response_meta(db)}
        todo: list[tuple[int, str, HashAlgorithm, EffectiveStatus]] = []
        seen: set[CacheKey] = set()
        expected_signer: dict[int, int | None] = {}  # the signer a fresh response of this CA would carry
        for row in ocsp_repo.cert_status_rows(db, not_after_min=now):
            if row.ca_id not in expected_signer:
                try:
                    ident = self._identity(row.ca_id)
                except PkiError:
                    ident = None
                expected_signer[row.ca_id] = ident.signer_id if ident is not None else None
            status = effective_status(row, self._revoked_cas)
            algs = set(PRESIGN_ALGORITHMS)
            for alg in HashAlgorithm:
                if (row.ca_id, row.serial, alg.value) in existing:
                    algs.add(alg)
            for alg in algs:
                key = (row.ca_id, row.serial, alg.value)
                seen.add(key)
                meta = existing.get(key)
                if meta is None or meta[3] != status.status or utc(meta[4]) <= refresh_before or (
                        meta[6] != expected_signer[row.ca_id]):
                    todo.append((row.ca_id, row.serial, alg, status))
        if limit is not None:
            todo = todo[:limit]
        by_ca: dict[int, list[tuple[int, str, HashAlgorithm, EffectiveStatus]]] = {}
        for item in todo:
            by_ca.setdefault(item[0], []).append(item)
        next_update = now + self.policy.response_validity
        for ca_id, items in by_ca.items():
            try:
                identity = self._identity(ca_id)
            except PkiError as exc:
                log.warning("no OCSP identity for CA %s: %s", ca_id, exc.message)
                identity = None
            if identity is None:
                stats.skipped_cas.append(str(ca_id))
                continue
            batch: list[dict[str, object]] = []
            entries: list[tuple[CacheKey, CachedResponse]] = []
            written: set[CacheKey] = set()
            for _ca, serial, alg, status in items:
                names = self._issuer_hashes.get((ca_id, alg.value))
                if names is None:
                    stats.failures += 1
                    continue
                cid = CertId(alg, names[0], names[1], int(serial, 16))
                try:
                    der, produced = build_single(cid, status, now, next_update, identity)
                except Exception as exc:
                    log.warning("pre-signing failed for %s/%s: %s", ca_id, serial, type(exc).__name__)
                    stats.failures += 1
                    continue
                stamp = self._now()
                batch.append({"ca_id": ca_id, "serial": serial, "hash_algorithm": alg.value,
                              "cert_status": status.status, "der": der, "this_update": now,
                              "next_update": next_update, "produced_at": produced,
                              "signer_id": identity.signer_id, "updated_at": stamp})
                entries.append(((ca_id, serial, alg.value),
                                CachedResponse.of(der, status.status, now, next_update, produced, stamp)))
                if len(batch) >= 500:
                    written.update(ocsp_repo.upsert_responses(db, batch, unless_changed_after=snapshot))
                    batch.clear()
            written.update(ocsp_repo.upsert_responses(db, batch, unless_changed_after=snapshot))
            for key, entry in entries:
                if key in written:
                    self._remember(key, entry)
                    stats.signed += 1
        return stats

    def sync_from_store(self) -> int:
        """Pull rows other instances (or the CLI) changed since the last look; drop stale ones. Returns rows changed.

        The poll reads only keys and timestamps; DER is fetched just for rows whose ``updated_at`` differs from the
        in-memory copy (our own writes match and cost nothing), so polling every 0.25 s stays cheap.
        """
        self._ensure_loaded()
        # Everything committed before the previous poll was read then; a row committed later can only carry an
        # ``updated_at`` up to ``sync_overlap`` older than its commit. So the window starts ``sync_overlap`` before
        # the later of the previous poll and the newest row seen: an idle table costs an empty range query, not a
        # re-read of the last burst of writes every 0.25 s (it was ~30 % of a core per worker after pre-signing).
        # Assumes instance clocks agree within ``sync_overlap`` (NTP), as OCPP/OCSP validity already does.
        poll_started = self._now()
        newest = max(self._last_sync, self._last_poll)
        since = newest - self.policy.sync_overlap if newest > _EPOCH else _EPOCH
        self._last_poll = poll_started
        db = self.authority.db
        changes = ocsp_repo.response_changes_since(db, since)
        changed = 0
        wanted: list[CacheKey] = []
        saw_stale = False
        for ca_id, serial, alg, status, updated_at in changes:
            key = (ca_id, serial, alg)
            updated = utc(updated_at)
            if updated > self._last_sync:
                self._last_sync = updated
            if status == ocsp_repo.STALE:
                saw_stale = True
                if self._memory.pop(key, None) is not None:
                    changed += 1
                continue
            current = self._memory.get(key)
            # a status change (good -> revoked) is always taken, whatever the writers' clocks say
            if current is None or current.status != status or current.updated_at < updated:
                wanted.append(key)
        for key in wanted:
            row = ocsp_repo.get_response(db, *key)
            if row is None or row.der is None or row.cert_status == ocsp_repo.STALE:
                continue
            updated = utc(row.updated_at)
            current = self._memory.get(key)
            if current is not None and current.status == row.cert_status and current.updated_at >= updated:
                continue
            self._remember(key, CachedResponse.of(row.der, row.cert_status, row.this_update, row.next_update,
                                                  row.produced_at, updated))
            changed += 1
        if saw_stale:
            self._revoked_cas = ocsp_repo.revoked_ca_ids(db)
        return changed

    # --- revocation ---------------------------------------------------------------------------------------------

    def on_revocation(self, event: RevocationEvent) -> None:
        """Replace the certificate's responses at once (memory and table); for a CA, drop its children's too."""
        rec = event.record
        if event.is_ca and rec.subject_ca_id is not None:
            self._revoked_cas = ocsp_repo.revoked_ca_ids(self.authority.db)
            child_ca = rec.subject_ca_id
            for key in [k for k in self._memory if k[0] == child_ca]:
                self._memory.pop(key, None)
        self._ensure_loaded()
        algs = {alg for alg in HashAlgorithm if (rec.ca_id, rec.serial, alg.value) in self._memory}
        algs.update(PRESIGN_ALGORITHMS)
        for key in [(rec.ca_id, rec.serial, a.value) for a in HashAlgorithm]:
            self._memory.pop(key, None)
        row = ocsp_repo.cert_status_row(self.authority.db, rec.ca_id, rec.serial)
        status = effective_status(row, self._revoked_cas)
        identity = self._identity(rec.ca_id)
        if identity is None or status.status == "unknown":
            return
        now = self._now().replace(microsecond=0)
        next_update = now + self.policy.response_validity
        for alg in sorted(algs):
            names = self._issuer_hashes.get((rec.ca_id, alg.value))
            if names is None:
                continue
            der, produced = build_single(CertId(alg, names[0], names[1], int(rec.serial, 16)), status, now,
                                         next_update, identity)
            self._store(rec.ca_id, rec.serial, alg, der, status.status, now, next_update, identity.signer_id,
                        produced)

    def forget(self, keys: Iterable[CacheKey]) -> None:
        for key in keys:
            self._memory.pop(key, None)
