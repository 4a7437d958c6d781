"""Tamper-evident audit log: verification of the hash chain, signed checkpoints, JSON-lines export.

Appending is done by :func:`pki.store.repo.add_audit` (and the issuance/token transactions), which chain every
entry onto a locked head row. This module answers the auditor's questions:

* Was any entry edited? (its recomputed hash differs from the stored one)
* Was any entry deleted, inserted or moved? (a gap in ``sequence``, or ``prev_hash`` not the previous entry's hash)
* Was the tail cut off? (the head row or a signed checkpoint names a later entry than the last one present)
* Was the whole history rewritten with recomputed hashes? (a checkpoint's signature, made with the audit key that
  lives in the key store — an HSM in production — no longer matches the entry at its sequence)

What it cannot see: entries removed *after* the newest checkpoint together with a consistent rewrite of the head
row by someone with database write access. Checkpoints are therefore taken periodically and their
``(sequence, entry_hash)`` should also be copied off the machine (``pnc audit export`` / a log shipper).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from pki.clock import Clock, SystemClock
from pki.errors import KeyStoreError, PkiError
from pki.keys.base import KeyAlgorithm, KeyManager, Signer
from pki.store import repo
from pki.store.audit_chain import compute_hash, entry_dict, format_time
from pki.store.security_models import GENESIS_HASH, AuditCheckpoint

AUDIT_KEY_LABEL = "audit-signing"
CHECKPOINT_DOMAIN = "pnc-audit-checkpoint-v1"


@dataclass(frozen=True)
class Problem:
    sequence: int | None
    kind: str  # edited | gap | link | unchained | truncated | head | checkpoint-signature | checkpoint-mismatch
    message: str


@dataclass
class VerifyResult:
    entries: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    checkpoints_verified: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "last_sequence": self.last_sequence,
                "last_hash": self.last_hash, "checkpoints_verified": self.checkpoints_verified,
                "problems": [p.__dict__ for p in self.problems]}


def checkpoint_payload(sequence: int, entry_hash: str, at: dt.datetime) -> bytes:
    body = {"domain": CHECKPOINT_DOMAIN, "sequence": sequence, "entry_hash": entry_hash, "at": format_time(at)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def key_fingerprint(public_key: PublicKeyTypes) -> str:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def sign_bytes(signer: Signer, data: bytes) -> bytes:
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        return signer.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(signer, rsa.RSAPrivateKey):
        return signer.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(signer, ed448.Ed448PrivateKey | ed25519.Ed25519PrivateKey):
        return signer.sign(data)
    raise KeyStoreError("unsupported audit key type")


def verify_bytes(public_key: PublicKeyTypes, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed448.Ed448PublicKey | ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_entries(
    entries: Iterable[dict[str, Any]],
    *,
    head: tuple[int, str] | None = None,
    checkpoints: Sequence[dict[str, Any]] = (),
    trusted_keys: Sequence[PublicKeyTypes] = (),
) -> VerifyResult:
    """Verify a chain given in sequence order (entries with ``sequence`` None first), as exported dicts.

    ``head`` is the chain-head row (sequence, hash); ``checkpoints`` are exported checkpoint dicts
    (sequence, entry_hash, at, key_fingerprint, signature hex) verified against ``trusted_keys``.
    """
    result = VerifyResult()
    hashes_at: dict[int, str] = {}
    wanted = {int(c["sequence"]) for c in checkpoints}
    expected, prev = 1, GENESIS_HASH
    for entry in entries:
        result.entries += 1
        seq = entry.get("sequence")
        if seq is None:
            result.problems.append(Problem(None, "unchained", "an entry outside the chain (inserted directly into "
                                                              f"the table): {entry.get('action')!r}"))
            continue
        seq = int(seq)
        stored = entry.get("entry_hash")
        if compute_hash(entry) != stored:
            result.problems.append(Problem(seq, "edited", f"entry {seq} was altered (its hash does not match)"))
        if seq != expected:
            result.problems.append(Problem(seq, "gap", f"entries {expected}..{seq - 1} are missing (deleted)")
                                   if seq > expected else
                                   Problem(seq, "gap", f"entry {seq} is out of order (expected {expected})"))
        if entry.get("prev_hash") != prev:
            result.problems.append(Problem(seq, "link", f"entry {seq} does not follow the entry before it "
                                                        "(deleted, inserted or reordered)"))
        if seq in wanted:
            hashes_at[seq] = str(stored)
        prev, expected = str(stored), seq + 1
        result.last_sequence, result.last_hash = seq, prev
    if head is not None and (head[0], head[1]) != (result.last_sequence, result.last_hash):
        result.problems.append(Problem(head[0], "truncated" if head[0] > result.last_sequence else "head",
                                       f"the chain head names entry {head[0]} but the log ends at "
                                       f"{result.last_sequence} (entries removed from the end, or head rewritten)"))
    by_fp = {key_fingerprint(k): k for k in trusted_keys}
    for cp in checkpoints:
        seq, digest = int(cp["sequence"]), str(cp["entry_hash"])
        key = by_fp.get(str(cp["key_fingerprint"]))
        at = dt.datetime.fromisoformat(str(cp["at"]).replace("Z", "+00:00"))
        if key is None or not verify_bytes(key, bytes.fromhex(str(cp["signature"])),
                                           checkpoint_payload(seq, digest, at)):
            result.problems.append(Problem(seq, "checkpoint-signature",
                                           f"checkpoint at entry {seq} is not signed by a trusted audit key"))
            continue
        if seq > result.last_sequence:
            result.problems.append(Problem(seq, "truncated", f"a signed checkpoint covers entry {seq} but the log "
                                                             f"ends at {result.last_sequence}"))
        elif hashes_at.get(seq) != digest:
            result.problems.append(Problem(seq, "checkpoint-mismatch",
                                           f"entry {seq} differs from the signed checkpoint (history rewritten)"))
        else:
            result.checkpoints_verified += 1
    return result


def checkpoint_dict(cp: AuditCheckpoint) -> dict[str, Any]:
    return {"type": "checkpoint", "sequence": cp.sequence, "entry_hash": cp.entry_hash, "at": format_time(cp.at),
            "key_uri": cp.key_uri, "key_fingerprint": cp.key_fingerprint, "signature": cp.signature.hex()}


class AuditLog:
    """Checkpoints, verification and export over one database and key store."""

    def __init__(self, db: repo.Database, keys: KeyManager, *, key_uri: str | None = None,
                 scheme: str | None = None, clock: Clock | None = None) -> None:
        self.db = db
        self.keys = keys
        self._key_uri = key_uri
        self.scheme = scheme or keys.default_scheme
        self.clock: Clock = clock or SystemClock()

    # --- the audit signing key ---------------------------------------------------------------------------

    def _default_uri(self) -> str:
        store = self.keys.store_for(self.scheme)
        if self.scheme == "file":
            return f"file:{AUDIT_KEY_LABEL}.key.pem"
        token = getattr(store, "token_label", None)
        if self.scheme == "pkcs11" and token:
            from pki.keys.pkcs11 import make_uri

            return make_uri(token, AUDIT_KEY_LABEL)
        raise KeyStoreError(f"set the audit key URI explicitly for scheme {self.scheme!r}")

    def key_uri(self) -> str:
        return self._key_uri or self._default_uri()

    def signer(self, *, create: bool = False, actor: str = "system") -> Signer:
        uri = self.key_uri()
        try:
            return self.keys.signer(uri)
        except KeyStoreError:
            if not create or self._key_uri:
                raise
        made = self.keys.generate(AUDIT_KEY_LABEL, KeyAlgorithm.P256, scheme=self.scheme)
        repo.add_audit(self.db, repo.audit_event(actor, "key.generate", "success", target=made,
                                                 details={"purpose": "audit checkpoints", "algorithm": "ec-p256"}))
        return self.keys.signer(made)

    def public_key(self) -> PublicKeyTypes:
        return self.signer().public_key()

    # --- checkpoints -------------------------------------------------------------------------------------

    def checkpoint(self, *, force: bool = False, actor: str = "system") -> AuditCheckpoint | None:
        """Sign the current head; ``None`` when there is nothing new since the last checkpoint."""
        head = repo.audit_head(self.db)
        last = repo.latest_checkpoint(self.db)
        if head.sequence == 0 or (not force and last is not None and last.sequence >= head.sequence):
            return None
        signer = self.signer(create=True, actor=actor)
        head = repo.audit_head(self.db)  # creating the key appended an entry
        at = self.clock.now()
        signature = sign_bytes(signer, checkpoint_payload(head.sequence, head.entry_hash, at))
        return repo.add_checkpoint(self.db, AuditCheckpoint(
            sequence=head.sequence, entry_hash=head.entry_hash, at=at, key_uri=self.key_uri(),
            key_fingerprint=key_fingerprint(signer.public_key()), signature=signature))

    # --- verification and export -------------------------------------------------------------------------

    def entries(self) -> Iterator[dict[str, Any]]:
        for event in repo.iter_audit(self.db):
            yield entry_dict(event)

    def verify(self, trusted_keys: Sequence[PublicKeyTypes] | None = None) -> VerifyResult:
        keys = list(trusted_keys) if trusted_keys is not None else self._own_keys()
        # The head is read first: entries appended while we read (the service keeps running) lie beyond it and
        # are covered by the next verification; an entry removed from below the head still shows as truncation.
        head = repo.audit_head(self.db)
        checkpoints = [checkpoint_dict(c) for c in repo.list_checkpoints(self.db)]
        upto = head.sequence
        covered = (e for e in self.entries() if e.get("sequence") is None or int(e["sequence"]) <= upto)
        return verify_entries(covered, head=(head.sequence, head.entry_hash), checkpoints=checkpoints,
                              trusted_keys=keys)

    def _own_keys(self) -> list[PublicKeyTypes]:
        try:
            return [self.public_key()]
        except PkiError:
            return []

    def export(self, out: IO[str], *, checkpoints: bool = True) -> int:
        """JSON lines: one ``{"type": "entry", ...}`` per entry in chain order, then the checkpoints."""
        n = 0
        for entry in self.entries():
            out.write(json.dumps({"type": "entry", **entry}, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
        if checkpoints:
            for cp in repo.list_checkpoints(self.db):
                out.write(json.dumps(checkpoint_dict(cp), sort_keys=True) + "\n")
        head = repo.audit_head(self.db)
        out.write(json.dumps({"type": "head", "sequence": head.sequence, "entry_hash": head.entry_hash}) + "\n")
        return n


def verify_export(lines: Iterable[str], trusted_keys: Sequence[PublicKeyTypes]) -> VerifyResult:
    """Verify a ``pnc audit export`` file offline (entries must be in the exported order)."""
    entries: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    head: tuple[int, str] | None = None
    for line in lines:
        if not line.strip():
            continue
        obj = json.loads(line)
        kind = obj.pop("type", "entry")
        if kind == "checkpoint":
            checkpoints.append(obj)
        elif kind == "head":
            head = (int(obj["sequence"]), str(obj["entry_hash"]))
        else:
            entries.append(obj)
    return verify_entries(entries, head=head, checkpoints=checkpoints, trusted_keys=trusted_keys)
