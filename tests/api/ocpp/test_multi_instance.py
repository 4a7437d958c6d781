"""Several pnc-pki instances on one database (as processes on one PostgreSQL; CI runs this on both engines): a
station is connected to one instance, and only that instance delivers its outbox calls — once — whichever
instance queued them; calls left on the wire by an instance that died come back, calls in flight on a live one
do not."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.context import Services
from api.ocpp.settings import OcppSettings
from pki.store import ocpp_repo
from pki.store.ocpp_models import OcppOutbox, OutboxStatus
from pki.store.repo import Database
from tests.api.ocpp.conftest import register, run, serving
from tests.api.ocpp.stations_sim import connect

pytestmark = pytest.mark.interop

LEASE = dt.timedelta(seconds=60)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _row(db: Database, station: str, status: str = OutboxStatus.PENDING) -> OcppOutbox:
    return ocpp_repo.enqueue(db, [OcppOutbox(station_id=station, action="GetInstalledCertificateIds",
                                             payload=json.dumps({}), status=status)])[0]


def test_only_the_instance_holding_the_connection_can_claim(db: Database) -> None:
    ocpp_repo.claim_connection(db, "MI1", "A", T0, LEASE)
    row = _row(db, "MI1")
    assert row.id is not None
    assert not ocpp_repo.claim_outbox(db, row.id, T0, "B")  # B does not hold MI1
    assert ocpp_repo.claim_outbox(db, row.id, T0, "A")
    assert not ocpp_repo.claim_outbox(db, row.id, T0, "A")  # once only
    assert ocpp_repo.live_owners(db, ["MI1", "NOBODY"], T0) == {"MI1": "A"}
    assert ocpp_repo.live_owners(db, ["MI1"], T0 + LEASE) == {}  # lease ran out


def test_orphaned_calls_are_requeued_and_live_ones_are_not(db: Database) -> None:
    ocpp_repo.claim_connection(db, "MI2", "A", T0, LEASE)
    row = _row(db, "MI2")
    assert row.id is not None and ocpp_repo.claim_outbox(db, row.id, T0, "A")
    # another instance starting (or ticking) while A is alive and waiting for the answer: untouched
    assert ocpp_repo.requeue_orphans(db, T0 + dt.timedelta(seconds=30)) == 0
    # A died: its lease runs out and the call is pending again
    assert ocpp_repo.requeue_orphans(db, T0 + LEASE + dt.timedelta(seconds=1)) == 1
    assert (got := ocpp_repo.get_outbox(db, row.id)) is not None and got.status == OutboxStatus.PENDING
    # the station reconnects to B before A's lease ran out: A's call is an orphan at once
    assert ocpp_repo.claim_outbox(db, row.id, T0, "A")
    ocpp_repo.claim_connection(db, "MI2", "B", T0 + dt.timedelta(seconds=5), LEASE)
    assert ocpp_repo.requeue_orphans(db, T0 + dt.timedelta(seconds=6)) == 1
    # A noticing its (dead) connection closed must not drop B's ownership
    ocpp_repo.release_connection(db, "MI2", "A")
    assert ocpp_repo.live_owners(db, ["MI2"], T0 + dt.timedelta(seconds=6)) == {"MI2": "B"}
    # rows sent by older code (no sender recorded) are orphans
    legacy = _row(db, "MI2", OutboxStatus.SENT)
    assert ocpp_repo.requeue_orphans(db, T0 + dt.timedelta(seconds=6)) == 1
    assert (got := ocpp_repo.get_outbox(db, legacy.id or 0)) is not None and got.status == OutboxStatus.PENDING


def test_leases_are_renewed_and_dead_rows_dropped(db: Database) -> None:
    ocpp_repo.claim_connection(db, "MI3", "A", T0, LEASE)
    ocpp_repo.claim_connection(db, "MI4", "DEAD", T0, LEASE)
    later = T0 + LEASE * 2 + dt.timedelta(seconds=1)
    assert ocpp_repo.renew_connections(db, "A", later, LEASE) == 1
    assert ocpp_repo.live_owners(db, ["MI3", "MI4"], later) == {"MI3": "A"}
    assert ocpp_repo.live_owners(db, ["MI4"], T0) == {}  # the dead instance's row is gone, not just expired


def test_a_call_queued_on_another_instance_is_delivered_once_by_the_holder(services: Services) -> None:
    settings = OcppSettings(outbox_tick=0.1, outbox_backoff_base=30, call_timeout=5.0, connection_renew=0.5)
    register(services, "MI5")
    token = services.settings.resolved_admin_token_file().read_text().strip()
    with serving(services, settings) as a, serving(services, settings) as b:
        assert a.runtime.instance_id != b.runtime.instance_id

        async def station() -> int:
            async with connect(a.url, "MI5") as cp:
                deadline = asyncio.get_running_loop().time() + 10
                while ocpp_repo.live_owners(services.db, ["MI5"], services.authority.clock.now()) != \
                        {"MI5": a.runtime.instance_id}:
                    assert asyncio.get_running_loop().time() < deadline, "A never claimed the connection"
                    await asyncio.sleep(0.05)
                # queued through instance B (a REST call landing there); B's session map has no MI5
                [row] = await asyncio.to_thread(b.runtime.enqueue_command, ["MI5"], "GetInstalledCertificateIds",
                                                {}, actor="test")
                assert row.id is not None
                while (got := ocpp_repo.get_outbox(services.db, row.id)) is None or \
                        got.status != OutboxStatus.ANSWERED:
                    assert asyncio.get_running_loop().time() < deadline, f"not delivered: {got}"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # several ticks of both instances and a lease renewal pass
                # each instance reports the stations connected to it
                async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
                    for srv, expected in ((a, 1), (b, 0)):
                        text = (await http.get(f"{srv.http}/metrics")).text
                        [family] = [f for f in text_string_to_metric_families(text)
                                    if f.name == "pnc_ocpp_connected_stations"]
                        assert {s.labels["version"]: s.value for s in family.samples}["2.0.1"] == expected
                return int(cp.inventory_requests)

        assert run(station()) == 1
        [row] = ocpp_repo.list_outbox(services.db, station_id="MI5")
        assert row.status == OutboxStatus.ANSWERED and row.attempts == 1 and row.sent_by == a.runtime.instance_id
        assert row.error is None  # B never backed it off as "station offline"
    # both stopped cleanly: no connection row is left behind
    assert ocpp_repo.live_owners(services.db, ["MI5"], services.authority.clock.now()) == {}
