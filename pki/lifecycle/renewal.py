"""Sub-CA renewal with overlap (``pnc ca renew``) and retirement of a renewed CA (``pnc ca retire``).

Renewal creates a *new* sub-CA (new key, new certificate, name ``<base>-g<n>``, CN suffixed `` G<n>``) under the
same parent — or under the parent's newest active successor — and leaves the old one active: leaves it issued
stay valid and verifiable (its OCSP signer and CRL keep being renewed by the revocation service, which serves
every *active* CA), while :meth:`Authority.issuer_for` sends new issuance to the newest active CA of the kind.
Renewing well before expiry matters: a leaf never outlives its issuer (the authority caps notAfter), so a sub-CA
close to its end issues ever shorter leaves. The old CA is retired once nothing valid under it remains.
"""

from __future__ import annotations

from cryptography import x509

from pki.authority import Authority
from pki.clock import utc
from pki.errors import Conflict, PolicyViolation
from pki.keys.base import KeyAlgorithm
from pki.lifecycle.rotation import _base, descendants, renamed_subject
from pki.profiles import CertKind
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import CaStatus, CertificateAuthority

EXCLUDED = ("ocsp-signer",)


def _successor(authority: Authority, ca: CertificateAuthority) -> CertificateAuthority:
    """The newest active CA of ``ca``'s kind below the same root (``ca`` itself if it was never renewed)."""
    root = authority.root_of(ca)
    for cand in repo.active_cas_of_kind(authority.db, ca.kind, ca.generation):  # newest first
        if cand.certificate_id is None:
            continue  # an interrupted creation: never a successor (Authority.issuer_for skips it too)
        if authority.root_of(cand).id == root.id:
            return cand
    return ca


def renew_ca(authority: Authority, name: str, *, cascade: bool = False, validity_days: int | None = None,
             actor: str = "system") -> list[CertificateAuthority]:
    """Create the successor of sub-CA ``name`` (and with ``cascade`` of every sub-CA below it, re-parented)."""
    ca = authority.ca(name)
    if ca.parent_id is None:
        raise PolicyViolation(f"{name!r} is a root; rotate it with `pnc root rotate`")
    if ca.status != CaStatus.ACTIVE:
        raise PolicyViolation(f"{name!r} is {ca.status}; only active CAs are renewed")
    if ca.external_key:
        raise PolicyViolation(f"{name!r} has an external key; renew it where its key lives")
    successor = _successor(authority, ca)
    if successor.id != ca.id:
        raise Conflict(f"{name!r} was already renewed as {successor.name!r}; renew that one")
    created: list[CertificateAuthority] = []
    parent = _successor(authority, authority.ca_by_id(ca.parent_id))
    created.append(_renew_one(authority, ca, parent, validity_days, actor))
    if cascade:
        mapping = {ca.id: created[0]}
        for child in descendants(authority.db, ca):
            assert child.parent_id is not None
            new_parent = mapping.get(child.parent_id)
            if new_parent is None or _successor(authority, child).id != child.id:
                continue
            new_child = _renew_one(authority, child, new_parent, validity_days, actor)
            mapping[child.id] = new_child
            created.append(new_child)
    return created


def _renew_one(authority: Authority, ca: CertificateAuthority, parent: CertificateAuthority,
               validity_days: int | None, actor: str) -> CertificateAuthority:
    base, n = _base(ca.name)
    n += 1
    existing = {c.name for c in authority.cas()}
    while f"{base}-g{n}" in existing:
        n += 1
    new_name = f"{base}-g{n}"
    subject = renamed_subject(authority.ca_certificate(ca).subject, n)
    new = authority.create_sub_ca(new_name, CertKind(ca.kind), parent.name, subject,
                                  key_algorithm=KeyAlgorithm(ca.key_algorithm), validity_days=validity_days,
                                  actor=actor)
    old_cert = authority.ca_certificate(ca)
    repo.add_audit(authority.db, repo.audit_event(actor, "ca.renew", "success", target=ca.name,
                                                   details={"successor": new_name, "parent": parent.name,
                                                            "old_not_after": old_cert.not_valid_after_utc.isoformat()}))
    return new


def retire_ca(authority: Authority, name: str, *, force: bool = False, actor: str = "system") -> CertificateAuthority:
    """Stop using a renewed CA. Refused while valid end-entity certificates under it remain, unless ``force``."""
    ca = authority.ca(name)
    if ca.status != CaStatus.ACTIVE:
        raise Conflict(f"{name!r} is already {ca.status}")
    if _successor(authority, ca).id == ca.id and ca.parent_id is not None:
        raise Conflict(f"{name!r} is the newest {ca.kind} CA; renew it before retiring it")
    assert ca.id is not None
    ids = [ca.id] + [c.id or 0 for c in descendants(authority.db, ca)]
    in_use = lrepo.valid_leaves_under(authority.db, ids, authority.clock.now(), exclude_kinds=EXCLUDED)
    if in_use and not force:
        last = max(utc(c.not_after) for c in in_use)
        raise Conflict(f"{len(in_use)} valid certificate(s) under {name!r} remain (the last expires {last.date()}); "
                       "revoke or let them expire, or use --force")
    updated = repo.update_ca(authority.db, ca.id, status=CaStatus.RETIRED)
    authority.forget_cas()  # the authority caches CA rows
    repo.add_audit(authority.db, repo.audit_event(actor, "ca.retire", "success", target=name,
                                                   details={"forced": force, "valid_leaves": len(in_use)}))
    return updated


def chain_names(authority: Authority, cert: x509.Certificate) -> list[str]:
    """Names of the CAs in the chain a new leaf of the given certificate would get (for display)."""
    rec = repo.record_of(authority.db, cert)
    if rec is None:
        return []
    names = []
    current: CertificateAuthority | None = authority.ca_by_id(rec.ca_id)
    while current is not None:
        names.append(current.name)
        current = authority.ca_by_id(current.parent_id) if current.parent_id else None
    return names
