"""The contract registry: which customer (EMAID) may get a contract certificate, for which vehicle (PCID).

A contract is *active*, *cancelled* (by the eMSP; never reactivated) or *expired* (its validity ended; computed
from ``valid_to`` at read time and persisted lazily, so an expired contract can never be used even if no job ran).
EMAIDs are validated with the ISO (eMI3) check digit (:mod:`pki.identifiers`); generated EMAIDs use 9 random
characters and the database unique constraint, retrying on the (rare) collision.
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from pki.clock import Clock, SystemClock, utc
from pki.errors import Conflict, InvalidRequest, NotFound, PkiError, PolicyViolation
from pki.identifiers import IdentifierError, new_emaid, parse_emaid, parse_pcid
from pki.store import contract_repo, repo
from pki.store.contract_models import Contract, ContractStatus
from pki.store.repo import Database

_EMAID_ATTEMPTS = 8
DEFAULT_CONTRACT_DAYS = 2 * 365


class ProvisioningPolicy(enum.StrEnum):
    """How an installation request from a vehicle is matched to a contract.

    * ``bound``: only contracts bound to the vehicle's PCID (the eMSP bound them when the customer signed up).
    * ``bind-first``: as ``bound``; if none is bound, bind the oldest active unbound contract of the configured
      owner to this PCID (first-time provisioning in a fleet).
    * ``auto-create``: as ``bound``; if none is bound, create a new contract for the configured provider and owner
      (private environments and demos: every known vehicle gets a contract).
    """

    BOUND = "bound"
    BIND_FIRST = "bind-first"
    AUTO_CREATE = "auto-create"


class ContractError(PkiError):
    """No usable contract; ``code`` is the ISO 15118 ResponseCode."""

    status = 422


@dataclass(frozen=True)
class RegistryPolicy:
    provisioning: ProvisioningPolicy = ProvisioningPolicy.BOUND
    default_owner: str | None = None  # bind-first / auto-create: whose contracts
    default_country: str | None = None  # auto-create: EMAID country code
    default_provider: str | None = None  # auto-create: EMAID provider ID


def normalise_emaid(text: str) -> str:
    """The stored form: 15 characters, upper case, no separators; a 14-character input gets its check digit."""
    try:
        return parse_emaid(text).with_check_digit()
    except IdentifierError as exc:
        raise InvalidRequest(str(exc), code="InvalidEmaid") from None


def normalise_pcid(text: str) -> str:
    try:
        return parse_pcid(text).normalized
    except IdentifierError as exc:
        raise InvalidRequest(str(exc), code="InvalidPcid") from None


class ContractRegistry:
    def __init__(self, db: Database, *, clock: Clock | None = None, policy: RegistryPolicy | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.policy = policy or RegistryPolicy()

    # --- administration ------------------------------------------------------------------------------------

    def create(
        self,
        *,
        owner: str,
        emaid: str | None = None,
        country: str | None = None,
        provider: str | None = None,
        pcid: str | None = None,
        valid_days: int | None = None,
        generation: str = "iso15118-2",
        note: str | None = None,
        actor: str = "system",
    ) -> Contract:
        """Register a contract with a given EMAID, or generate one for ``country`` + ``provider``."""
        if not owner.strip():
            raise InvalidRequest("owner must not be empty")
        if generation not in ("iso15118-2", "iso15118-20"):
            raise InvalidRequest("generation must be iso15118-2 or iso15118-20")
        days = DEFAULT_CONTRACT_DAYS if valid_days is None else valid_days
        if not 1 <= days <= 10 * 365:
            raise InvalidRequest("valid_days must be between 1 and 3650")
        bound = normalise_pcid(pcid) if pcid else None
        now = self.clock.now().replace(microsecond=0)
        if emaid is not None:
            value = normalise_emaid(emaid)
            return self._insert(value, owner, bound, now, days, generation, note, actor)
        if not country or not provider:
            raise InvalidRequest("give an EMAID, or a country code and provider ID to generate one")
        for _ in range(_EMAID_ATTEMPTS):
            try:
                value = new_emaid(country, provider)
            except IdentifierError as exc:
                raise InvalidRequest(str(exc), code="InvalidEmaid") from None
            try:
                return self._insert(value, owner, bound, now, days, generation, note, actor)
            except Conflict:
                continue
        raise Conflict(f"could not draw a free EMAID for {country}{provider} in {_EMAID_ATTEMPTS} attempts")

    def _insert(self, emaid: str, owner: str, pcid: str | None, now: dt.datetime, days: int, generation: str,
                note: str | None, actor: str) -> Contract:
        contract = Contract(emaid=emaid, owner=owner[:255], provider_id=emaid[2:5], pcid=pcid, generation=generation,
                            valid_from=now, valid_to=now + dt.timedelta(days=days), created_by=actor, note=note)
        audit = repo.audit_event(actor, "contract.create", "success", target=emaid,
                                 details={"owner": owner, "pcid": pcid, "days": days})
        try:
            return contract_repo.add_contract(self.db, contract, audit)
        except contract_repo.DuplicateEmaid:
            raise Conflict(f"a contract with EMAID {emaid} already exists") from None

    def get(self, emaid: str) -> Contract:
        row = contract_repo.get_contract_by_emaid(self.db, normalise_emaid(emaid))
        if row is None:
            raise NotFound(f"no contract with EMAID {emaid}")
        return self._refresh(row)

    def list(self, *, owner: str | None = None, status: str | None = None, pcid: str | None = None,
             limit: int = 100, offset: int = 0) -> list[Contract]:
        if status is not None and status not in ContractStatus.ALL:
            raise InvalidRequest(f"status must be one of {', '.join(ContractStatus.ALL)}")
        rows = contract_repo.list_contracts(self.db, owner=owner, pcid=normalise_pcid(pcid) if pcid else None,
                                            limit=limit, offset=offset,
                                            status=None if status == ContractStatus.EXPIRED else status)
        rows = [self._refresh(r) for r in rows]
        return [r for r in rows if status is None or r.status == status]

    def cancel(self, emaid: str, *, reason: str | None = None, actor: str = "system") -> Contract:
        row = self.get(emaid)
        if row.status == ContractStatus.CANCELLED:
            raise Conflict(f"contract {row.emaid} is already cancelled")
        assert row.id is not None
        audit = repo.audit_event(actor, "contract.cancel", "success", target=row.emaid,
                                 details={"reason": reason})
        return contract_repo.update_contract(self.db, row.id, audit, status=ContractStatus.CANCELLED,
                                             cancelled_at=self.clock.now())

    def bind(self, emaid: str, pcid: str, *, actor: str = "system") -> Contract:
        row = self.get(emaid)
        if row.status != ContractStatus.ACTIVE:
            raise PolicyViolation(f"contract {row.emaid} is {row.status}")
        assert row.id is not None
        value = normalise_pcid(pcid)
        audit = repo.audit_event(actor, "contract.bind", "success", target=row.emaid, details={"pcid": value})
        return contract_repo.update_contract(self.db, row.id, audit, pcid=value)

    def set_certificate(self, contract: Contract, certificate_id: int) -> Contract:
        assert contract.id is not None
        return contract_repo.update_contract(self.db, contract.id, certificate_id=certificate_id)

    def _refresh(self, row: Contract) -> Contract:
        if row.status == ContractStatus.ACTIVE and utc(row.valid_to) < self.clock.now():
            assert row.id is not None
            return contract_repo.update_contract(self.db, row.id, status=ContractStatus.EXPIRED)
        return row

    # --- installation --------------------------------------------------------------------------------------

    def for_installation(self, pcid: str, *, prioritized: Sequence[str] = (), generation: str = "iso15118-2",
                         actor: str = "cps") -> builtins.list[Contract]:
        """Active contracts for this vehicle in preference order; raises :class:`ContractError`.

        Order: contracts whose EMAID the EV prioritised (-20 ``PrioritizedEMAIDs`` / OCPP 2.1
        ``prioritizedEMAIDs``) first, in the EV's order; then the most recent contract first (latest
        ``valid_from``, then the newest row) -- a newer contract for the same vehicle replaces an older one.
        :meth:`ContractInstaller.install` adds the -20 looping rule on top (see there).

        ResponseCodes: no contract at all -> FAILED_NoCertificateAvailable; only cancelled or expired ones ->
        FAILED_ContractCanceled (ISO 15118-2 has no separate "contract expired" code).
        """
        value = normalise_pcid(pcid)
        rows = [self._refresh(r) for r in contract_repo.contracts_for_pcid(self.db, value)]
        rows = [r for r in rows if r.generation == generation] or rows
        active = [r for r in rows if r.status == ContractStatus.ACTIVE]
        if not active and not rows:
            created = self._first_time(value, generation, actor)
            if created is not None:
                active = [created]
        if not active:
            if rows:
                states = ", ".join(sorted({r.status for r in rows}))
                raise ContractError(f"the contract(s) of vehicle {value} are {states}", code="FAILED_ContractCanceled")
            raise ContractError(f"no contract for vehicle {value}", code="FAILED_NoCertificateAvailable")
        listed = [normalise_emaid(e) for e in prioritized if _is_emaid(e)]
        order = {e: i for i, e in reversed(list(enumerate(listed)))}  # rank of the first mention
        by_recency = sorted(active, key=lambda r: (utc(r.valid_from), r.id or 0), reverse=True)
        return sorted(by_recency, key=lambda r: order.get(r.emaid, len(order)))  # stable: recency within a rank

    def _first_time(self, pcid: str, generation: str, actor: str) -> Contract | None:
        p = self.policy
        if p.provisioning is ProvisioningPolicy.BIND_FIRST and p.default_owner:
            for row in contract_repo.list_contracts(self.db, owner=p.default_owner, status=ContractStatus.ACTIVE,
                                                    limit=50):
                if row.pcid is None and row.generation == generation and row.id is not None:
                    audit = repo.audit_event(actor, "contract.bind", "success", target=row.emaid,
                                             details={"pcid": pcid, "policy": p.provisioning.value})
                    bound = contract_repo.bind_pcid_if_unbound(self.db, row.id, pcid, audit)
                    if bound is not None:
                        return self._refresh(bound)
            return None
        if p.provisioning is ProvisioningPolicy.AUTO_CREATE and p.default_country and p.default_provider:
            return self.create(owner=p.default_owner or "auto", country=p.default_country,
                               provider=p.default_provider, pcid=pcid, generation=generation,
                               note="created on first installation (auto-create policy)", actor=actor)
        return None


def _is_emaid(text: str) -> bool:
    try:
        parse_emaid(text)
    except IdentifierError:
        return False
    return True
