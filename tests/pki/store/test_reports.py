"""Expiry histogram: bucket boundaries, per-kind counts, what is excluded, and agreement with a brute-force count."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from pki.store import reports
from pki.store.models import Certificate, CertificateAuthority, CertStatus
from pki.store.repo import Database, add_ca

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 13, 30, tzinfo=UTC)  # a Wednesday


def _ca(db: Database, name: str = "ca") -> int:
    ca = add_ca(db, CertificateAuthority(name=name, kind="csms-sub", generation="ocpp", key_uri="file:x",
                                         key_algorithm="P-256"))
    assert ca.id is not None
    return ca.id


def _cert(db: Database, ca_id: int, serial: int, not_after: dt.datetime, kind: str = "station-client",
          status: str = CertStatus.VALID) -> None:
    with db.session() as s:
        s.add(Certificate(ca_id=ca_id, serial=format(serial, "x"), kind=kind, generation="ocpp", status=status,
                          subject=f"CN=S{serial}", key_algorithm="P-256", not_before=not_after - dt.timedelta(days=400),
                          not_after=not_after))
        s.commit()


def test_bucket_start_is_iso_monday_and_first_of_month() -> None:
    assert reports.bucket_start(NOW, reports.Bucket.WEEK) == dt.datetime(2026, 11, 23, tzinfo=UTC)
    sunday = dt.datetime(2026, 11, 29, 23, 59, tzinfo=UTC)
    assert reports.bucket_start(sunday, reports.Bucket.WEEK) == dt.datetime(2026, 11, 23, tzinfo=UTC)
    assert reports.bucket_start(NOW, reports.Bucket.MONTH) == dt.datetime(2026, 11, 1, tzinfo=UTC)
    bounds = reports.bucket_bounds(NOW, reports.Bucket.MONTH, 3)
    assert [b.date().isoformat() for b in bounds] == ["2026-11-01", "2026-12-01", "2027-01-01", "2027-02-01"]
    with pytest.raises(ValueError):
        reports.bucket_bounds(NOW, reports.Bucket.WEEK, reports.MAX_BUCKETS + 1)


def test_week_buckets_count_per_kind_and_respect_boundaries(db: Database) -> None:
    ca = _ca(db)
    monday = dt.datetime(2026, 11, 23, tzinfo=UTC)
    _cert(db, ca, 1, monday)  # first instant of bucket 0
    _cert(db, ca, 2, monday + dt.timedelta(days=7) - dt.timedelta(seconds=1))  # last second of bucket 0
    _cert(db, ca, 3, monday + dt.timedelta(days=7))  # first instant of bucket 1
    _cert(db, ca, 4, monday + dt.timedelta(days=8), kind="secc-leaf")
    _cert(db, ca, 5, monday + dt.timedelta(days=9), status=CertStatus.REVOKED)  # revoked: never renewed
    _cert(db, ca, 6, monday + dt.timedelta(days=9), status=CertStatus.PENDING)  # never released
    _cert(db, ca, 7, monday - dt.timedelta(seconds=1))  # lapsed, still marked valid
    _cert(db, ca, 8, monday + dt.timedelta(days=7 * 4))  # beyond 4 buckets
    hist = reports.expiry_histogram(db, now=NOW, bucket=reports.Bucket.WEEK, periods=4)
    assert hist.start == monday and hist.end == monday + dt.timedelta(days=28)
    assert [b.counts for b in hist.buckets] == [{"station-client": 2}, {"station-client": 1, "secc-leaf": 1}, {}, {}]
    assert [b.total for b in hist.buckets] == [2, 2, 0, 0]
    assert hist.expired == {"station-client": 1}
    assert hist.kinds == ["secc-leaf", "station-client"]
    only = reports.expiry_histogram(db, now=NOW, periods=4, kinds=["secc-leaf"])
    assert [b.total for b in only.buckets] == [0, 1, 0, 0] and only.expired == {}


def test_matches_a_brute_force_count_by_month_and_issuer(db: Database) -> None:
    ca1, ca2 = _ca(db, "a"), _ca(db, "b")
    rng = random.Random(7)
    expected: dict[tuple[int, int, str], int] = {}
    start = dt.datetime(2026, 11, 1, tzinfo=UTC)
    for serial in range(300):
        when = start + dt.timedelta(seconds=rng.randrange(0, 400 * 86400))
        ca, kind = rng.choice([ca1, ca2]), rng.choice(["station-client", "csms-server", "secc-leaf"])
        _cert(db, ca, serial + 1, when, kind=kind)
        month = (when.year - 2026) * 12 + when.month - 11
        if month < 12:
            expected[(ca, month, kind)] = expected.get((ca, month, kind), 0) + 1
    for ca in (ca1, ca2):
        hist = reports.expiry_histogram(db, now=NOW, bucket=reports.Bucket.MONTH, periods=12, ca_id=ca)
        got = {(ca, i, k): n for i, b in enumerate(hist.buckets) for k, n in b.counts.items()}
        assert got == {key: n for key, n in expected.items() if key[0] == ca}
