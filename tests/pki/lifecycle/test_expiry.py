"""Expiry watch with an injected clock: thresholds per kind, automatic renewal, CA warnings, single leader."""

from __future__ import annotations

import datetime as dt

import pytest

from pki.authority import Authority
from pki.clock import FixedClock
from pki.lifecycle.expiry import DEFAULT_THRESHOLDS, ExpiryWatch, parse_duration, parse_thresholds
from pki.lifecycle.stations import StationLifecycle
from pki.store import lifecycle_repo as lrepo
from pki.store import repo
from pki.store.models import StationCertState
from tests.conftest import make_hierarchies
from tests.pki.lifecycle.fleet import build_fleet

DAY = dt.timedelta(days=1)


@pytest.fixture
def world(authority: Authority):  # type: ignore[no-untyped-def]
    clock = FixedClock(dt.datetime(2026, 1, 10, 8, 0, tzinfo=dt.UTC))
    authority.clock = clock
    make_hierarchies(authority)
    lifecycle = StationLifecycle(authority.db, clock, grace=dt.timedelta(hours=12))
    fleet, _csms = build_fleet(authority, lifecycle, 3)
    watch = ExpiryWatch(authority.db, clock, gateway=fleet, lifecycle=lifecycle, holder="node-a")
    return authority, clock, lifecycle, fleet, watch


def test_thresholds_and_durations() -> None:
    assert parse_duration("30d") == 30 * DAY and parse_duration("12h") == dt.timedelta(hours=12)
    assert parse_duration("2w") == 14 * DAY and parse_duration("7") == 7 * DAY
    with pytest.raises(ValueError):
        parse_duration("soon")
    t = parse_thresholds("station-client=10d,secc-leaf=3d")
    assert t["station-client"] == 10 * DAY and t["secc-leaf"] == 3 * DAY and t["csms-sub"] == 180 * DAY
    with pytest.raises(ValueError):
        parse_thresholds("nonsense=3d")
    assert DEFAULT_THRESHOLDS["station-client"] == 30 * DAY and DEFAULT_THRESHOLDS["secc-leaf"] == 14 * DAY


def test_time_travel_renews_station_certificates_before_expiry(world) -> None:  # type: ignore[no-untyped-def]
    authority, clock, lifecycle, fleet, watch = world
    # station client 365 d, SECC 90 d (profile defaults). Day 70: SECC (14 d threshold) not yet due.
    clock.advance(70 * DAY)
    report = watch.tick()
    assert report.leader and report.triggered == []
    # Day 77: SECC within 14 d -> SignV2GCertificate for the connected stations; CS0001 is offline
    fleet.set_online("CS0001", False)
    clock.advance(7 * DAY)
    report = watch.tick()
    assert sorted(report.triggered) == ["CS0000", "CS0002"]
    for sid in ("CS0000", "CS0002"):
        triggers = fleet.sent(sid, "TriggerMessage")
        assert [m.payload["requestedMessage"] for m in triggers] == ["SignV2GCertificate"]
        new = lifecycle.in_use(sid, "V2GCertificate")
        assert len(new) == 1  # the renewed SECC certificate is in use, the old one superseded
    assert watch.tick().triggered == []  # same day: never twice
    # the offline station is renewed when it reconnects
    fleet.set_online("CS0001", True)
    assert watch.station_connected("CS0001") == ["secc-leaf"]
    # after the grace period the superseded SECC certificates are revoked (reason superseded)
    clock.advance(13 * DAY)
    report = watch.tick()
    assert report.revoked == 3
    olds = [c for c in repo.list_certificates(authority.db, kind="secc-leaf", limit=100) if c.status == "revoked"]
    assert len(olds) == 3 and {c.revocation_reason for c in olds} == {"superseded"}
    # no renewed certificate is triggered again (the renewed ones are far from expiry)
    assert watch.tick().triggered == []
    # Day 340: station client certificates (30 d threshold) -> SignChargingStationCertificate
    clock.set(dt.datetime(2026, 1, 10, 8, 0, tzinfo=dt.UTC) + 340 * DAY)
    report = watch.tick()
    assert "CS0000" in report.triggered
    assert [m.payload["requestedMessage"] for m in fleet.sent("CS0000", "TriggerMessage")][-1] == \
        "SignChargingStationCertificate"
    rows = lrepo.station_certificates(authority.db, "CS0000", "ChargingStationCertificate")
    assert [r.state for r in rows] == [StationCertState.SUPERSEDED, StationCertState.IN_USE]


def test_ca_warnings_once_per_day_and_stop_after_renewal(world) -> None:  # type: ignore[no-untyped-def]
    authority, clock, _lifecycle, fleet, watch = world
    for sid in list(fleet.fleet):
        fleet.set_online(sid, False)  # only CA behaviour here
    # cpo-sub2 lives 2 years; 180 d threshold -> warnings start ~day 550
    clock.advance(540 * DAY)
    assert not any("CPO Sub-CA 2" in w for w in watch.tick().warned)
    clock.advance(20 * DAY)
    warned = watch.tick().warned
    assert any("CPO Sub-CA 2" in w for w in warned)
    assert not any("CPO Sub-CA 2" in w for w in watch.tick().warned)  # once per day
    events = [e for e in repo.list_audit(authority.db, limit=10_000) if e.action == "certificate.expiry_warning"]
    assert any("CPO Sub-CA 2" in (e.target or "") for e in events)
    from pki.lifecycle.renewal import renew_ca

    renew_ca(authority, "cpo-sub2", actor="admin")
    clock.advance(DAY)
    assert not any("CPO Sub-CA 2" in w for w in watch.tick().warned)  # renewed: no more warnings


def test_expiring_query(world) -> None:  # type: ignore[no-untyped-def]
    _authority, clock, _lifecycle, _fleet, watch = world
    assert watch.expiring(within=30 * DAY) == []
    clock.advance(80 * DAY)
    found = watch.expiring(within=30 * DAY)
    assert {e.record.kind for e in found} == {"secc-leaf"} and len(found) == 3
    assert all(e.remaining <= 30 * DAY for e in found)
    assert found[0].as_dict()["remaining_days"] == pytest.approx(10, abs=0.1)
    assert watch.expiring(within=400 * DAY, kinds=["station-client"])[0].record.kind == "station-client"


def test_single_leader_and_takeover(world) -> None:  # type: ignore[no-untyped-def]
    authority, clock, lifecycle, fleet, watch = world
    other = ExpiryWatch(authority.db, clock, gateway=fleet, lifecycle=lifecycle, holder="node-b",
                        lease_ttl=dt.timedelta(minutes=10))
    assert watch.tick().leader is True
    assert other.tick().leader is False
    clock.advance(dt.timedelta(minutes=5))
    assert watch.tick().leader is True  # renews its own lease
    clock.advance(dt.timedelta(minutes=11))  # node-a died: its lease expired
    assert other.tick().leader is True
    assert watch.tick().leader is False
