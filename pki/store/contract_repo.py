"""Repository functions for the trust store and the contract registry (each opens its own short transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from pki.store import audit_chain
from pki.store.contract_models import Contract, ContractStatus, TrustAnchor
from pki.store.models import AuditEvent
from pki.store.repo import Database


class DuplicateEmaid(Exception):
    """The EMAID is taken (unique constraint); a generator draws a new instance."""


class DuplicateAnchor(Exception):
    """A trust anchor with this fingerprint is already stored."""


# --- trust store -------------------------------------------------------------------------------------------


def add_trust_anchor(db: Database, anchor: TrustAnchor, audit: AuditEvent) -> TrustAnchor:
    with db.session() as s:
        s.add(anchor)
        audit_chain.append(s, audit)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            raise DuplicateAnchor(anchor.fingerprint_sha256) from None
        s.refresh(anchor)
        return anchor


def list_trust_anchors(db: Database, *, role: str | None = None) -> list[TrustAnchor]:
    with db.session() as s:
        q = select(TrustAnchor)
        if role:
            q = q.where(TrustAnchor.role == role)
        return list(s.exec(q.order_by(col(TrustAnchor.id))).all())


def get_trust_anchor(db: Database, anchor_id: int) -> TrustAnchor | None:
    with db.session() as s:
        return s.get(TrustAnchor, anchor_id)


def get_trust_anchor_by_fingerprint(db: Database, fingerprint: str) -> TrustAnchor | None:
    with db.session() as s:
        return s.exec(select(TrustAnchor).where(TrustAnchor.fingerprint_sha256 == fingerprint)).first()


def delete_trust_anchor(db: Database, anchor_id: int, audit: AuditEvent) -> bool:
    with db.session() as s:
        row = s.get(TrustAnchor, anchor_id)
        if row is None:
            return False
        s.delete(row)
        audit_chain.append(s, audit)
        s.commit()
        return True


# --- contracts ---------------------------------------------------------------------------------------------


def add_contract(db: Database, contract: Contract, audit: AuditEvent) -> Contract:
    with db.session() as s:
        s.add(contract)
        audit_chain.append(s, audit)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            raise DuplicateEmaid(contract.emaid) from None
        s.refresh(contract)
        return contract


def get_contract(db: Database, contract_id: int) -> Contract | None:
    with db.session() as s:
        return s.get(Contract, contract_id)


def get_contract_by_emaid(db: Database, emaid: str) -> Contract | None:
    with db.session() as s:
        return s.exec(select(Contract).where(Contract.emaid == emaid)).first()


_CONTRACTS = Contract.__table__  # type: ignore[attr-defined]
_FOR_PCID = sa_select(_CONTRACTS).where(_CONTRACTS.c.pcid == bindparam("pcid")).order_by(_CONTRACTS.c.id.desc())
_LINK = update(_CONTRACTS).where(_CONTRACTS.c.id == bindparam("contract_id")).values(
    certificate_id=bindparam("certificate_id"))


def contracts_for_pcid(db: Database, pcid: str) -> list[Contract]:
    """Every contract bound to a vehicle, newest first (the caller decides which statuses count).

    A prebuilt SQL statement and plain rows rather than an ORM session: every contract installation asks."""
    with db.reader() as conn:
        return [Contract(**row._mapping) for row in conn.execute(_FOR_PCID, {"pcid": pcid})]


def list_contracts(db: Database, *, owner: str | None = None, status: str | None = None,
                   pcid: str | None = None, limit: int = 100, offset: int = 0) -> list[Contract]:
    with db.session() as s:
        q = select(Contract)
        if owner:
            q = q.where(Contract.owner == owner)
        if status:
            q = q.where(Contract.status == status)
        if pcid:
            q = q.where(Contract.pcid == pcid)
        return list(s.exec(q.order_by(col(Contract.id)).offset(offset).limit(limit)).all())


def update_contract(db: Database, contract_id: int, audit: AuditEvent | None = None, **changes: Any) -> Contract:
    with db.session() as s:
        row = s.get(Contract, contract_id)
        if row is None:
            raise LookupError(contract_id)
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)
        if audit is not None:
            audit_chain.append(s, audit)
        s.commit()
        s.refresh(row)
        return row


def link_certificate(conn: Connection, contract_id: int, certificate_id: int) -> None:
    """Point the contract at its new certificate inside the caller's transaction (the issuance's own, see
    ``bulk.Signed.also``, which also chains the caller's audit event)."""
    result = conn.execute(_LINK, {"contract_id": contract_id, "certificate_id": certificate_id})
    if result.rowcount != 1:
        raise LookupError(f"no contract {contract_id}")


def bind_pcid_if_unbound(db: Database, contract_id: int, pcid: str, audit: AuditEvent) -> Contract | None:
    """Bind a contract to a vehicle unless someone else bound it first (first-time provisioning policy)."""
    with db.session() as s:
        row = s.get(Contract, contract_id)
        if row is None or row.pcid is not None or row.status != ContractStatus.ACTIVE:
            return None
        row.pcid = pcid
        s.add(row)
        audit_chain.append(s, audit)
        s.commit()
        s.refresh(row)
        return row
