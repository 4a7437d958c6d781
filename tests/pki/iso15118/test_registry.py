"""Contract registry: EMAID check digits, generation with DB-enforced uniqueness, statuses, installation lookup."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from pki.clock import FixedClock
from pki.errors import Conflict, InvalidRequest
from pki.identifiers import emaid_check_digit
from pki.iso15118 import registry as registry_mod
from pki.iso15118.registry import ContractError, ContractRegistry, ProvisioningPolicy, RegistryPolicy
from pki.store.repo import Database

PCID = "WMIV1234567890ABCD"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC))


@pytest.fixture
def reg(db: Database, clock: FixedClock) -> ContractRegistry:
    return ContractRegistry(db, clock=clock)


def test_create_with_given_emaid_normalises_and_adds_check_digit(reg: ContractRegistry) -> None:
    c = reg.create(owner="alice", emaid="de-8aa-001234567")  # 14 chars: the check digit is computed
    assert c.emaid == "DE8AA0012345670" and c.provider_id == "8AA" and c.status == "active"
    assert reg.get("DE-8AA-001234567-0").id == c.id


@pytest.mark.parametrize(("emaid", "message"), [
    ("DE8AA0012345671", "check digit '1' is wrong, expected '0'"),
    ("DE8AA00123456", "expected 14"),
    ("D18AA0012345670", "country code"),
])
def test_bad_emaids_are_refused_with_a_clear_reason(reg: ContractRegistry, emaid: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        reg.create(owner="alice", emaid=emaid)
    assert message in exc.value.message and exc.value.code == "InvalidEmaid"


def test_duplicate_emaid_is_a_conflict(reg: ContractRegistry) -> None:
    reg.create(owner="alice", emaid="DE8AA0012345670")
    with pytest.raises(Conflict):
        reg.create(owner="bob", emaid="de-8aa-001234567-0")


def test_generated_emaid_has_valid_check_digit(reg: ContractRegistry) -> None:
    c = reg.create(owner="alice", country="DE", provider="PNC")
    assert c.emaid.startswith("DEPNC") and len(c.emaid) == 15
    assert emaid_check_digit(c.emaid[:14]) == c.emaid[14]


def test_generator_retries_when_the_database_reports_a_collision(reg: ContractRegistry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first = reg.create(owner="alice", country="DE", provider="PNC")
    draws = iter([first.emaid, first.emaid, "DEPNC0000000010"[:14] + emaid_check_digit("DEPNC000000001")])
    monkeypatch.setattr(registry_mod, "new_emaid", lambda country, provider: next(draws))
    second = reg.create(owner="bob", country="DE", provider="PNC")
    assert second.emaid == "DEPNC000000001" + emaid_check_digit("DEPNC000000001")


def test_generator_gives_up_after_bounded_attempts(reg: ContractRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    first = reg.create(owner="alice", country="DE", provider="PNC")
    monkeypatch.setattr(registry_mod, "new_emaid", lambda country, provider: first.emaid)
    with pytest.raises(Conflict):
        reg.create(owner="bob", country="DE", provider="PNC")


def test_bad_provider_and_pcid_are_refused(reg: ContractRegistry) -> None:
    with pytest.raises(InvalidRequest):
        reg.create(owner="a", country="DE", provider="P-C")
    with pytest.raises(InvalidRequest) as exc:
        reg.create(owner="a", country="DE", provider="PNC", pcid="SHORT")
    assert exc.value.code == "InvalidPcid"


def test_cancel_list_and_expiry(reg: ContractRegistry, clock: FixedClock) -> None:
    a = reg.create(owner="alice", emaid="DE8AA0012345670", valid_days=10)
    b = reg.create(owner="alice", country="DE", provider="8AA", valid_days=100)
    assert reg.cancel(b.emaid, reason="customer left").status == "cancelled"
    with pytest.raises(Conflict):
        reg.cancel(b.emaid)
    clock.advance(dt.timedelta(days=11))
    assert [c.emaid for c in reg.list(status="expired")] == [a.emaid]
    assert [c.emaid for c in reg.list(status="cancelled")] == [b.emaid]
    assert reg.list(status="active") == []
    assert reg.get(a.emaid).status == "expired"  # persisted lazily


def test_installation_lookup_codes(reg: ContractRegistry, clock: FixedClock) -> None:
    with pytest.raises(ContractError) as exc:
        reg.for_installation(PCID)
    assert exc.value.code == "FAILED_NoCertificateAvailable"
    c = reg.create(owner="alice", emaid="DE8AA0012345670", pcid=PCID.lower(), valid_days=5)
    assert [x.emaid for x in reg.for_installation(PCID)] == [c.emaid]
    reg.cancel(c.emaid)
    with pytest.raises(ContractError) as exc:
        reg.for_installation(PCID)
    assert exc.value.code == "FAILED_ContractCanceled"
    d = reg.create(owner="alice", country="DE", provider="8AA", pcid=PCID, valid_days=5)
    clock.advance(dt.timedelta(days=6))
    with pytest.raises(ContractError) as exc:
        reg.for_installation(PCID)
    assert exc.value.code == "FAILED_ContractCanceled" and "expired" in exc.value.message
    assert reg.get(d.emaid).status == "expired"


def test_prioritized_emaids_order_the_contracts(reg: ContractRegistry, clock: FixedClock) -> None:
    a = reg.create(owner="o", country="DE", provider="PNC", pcid=PCID)
    b = reg.create(owner="o", country="DE", provider="PNC", pcid=PCID)
    clock.advance(dt.timedelta(hours=1))
    c = reg.create(owner="o", country="DE", provider="PNC", pcid=PCID)
    # without a preference: the most recent contract first (valid_from, then the newest row)
    assert [x.emaid for x in reg.for_installation(PCID)] == [c.emaid, b.emaid, a.emaid]
    # the EV's PrioritizedEMAIDs first, in its order; the rest by recency; non-EMAIDs are ignored
    got = reg.for_installation(PCID, prioritized=[a.emaid, "not-an-emaid", b.emaid])
    assert [x.emaid for x in got] == [a.emaid, b.emaid, c.emaid]
    assert [x.emaid for x in reg.for_installation(PCID, prioritized=[b.emaid])] == [b.emaid, c.emaid, a.emaid]


def test_first_time_policies(db: Database, clock: FixedClock) -> None:
    bind = ContractRegistry(db, clock=clock, policy=RegistryPolicy(ProvisioningPolicy.BIND_FIRST, default_owner="fleet"))
    spare = bind.create(owner="fleet", country="DE", provider="FLT")
    got = bind.for_installation(PCID)
    assert [c.emaid for c in got] == [spare.emaid] and bind.get(spare.emaid).pcid == PCID
    with pytest.raises(ContractError):  # the only spare is now bound to the first vehicle
        bind.for_installation("WMIV0000000000000")
    auto = ContractRegistry(db, clock=clock, policy=RegistryPolicy(ProvisioningPolicy.AUTO_CREATE, "demo", "DE", "DMO"))
    created = auto.for_installation("WMIV9999999999999")
    assert created[0].emaid.startswith("DEDMO") and created[0].pcid == "WMIV9999999999999"


def test_seeded_rng_is_only_for_tests() -> None:
    from pki.identifiers import new_emaid

    assert new_emaid("DE", "PNC", rng=random.Random(1)) == new_emaid("DE", "PNC", rng=random.Random(1))
