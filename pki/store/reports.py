"""Read-only aggregate queries for operators (the console's expiry timeline, capacity planning).

Kept apart from :mod:`pki.store.repo` (the write path) so reports can grow without touching issuance code. Every
query here is portable SQL: buckets are computed in Python as timestamp boundaries and the database only compares
``not_after`` against them (a ``CASE`` over the indexed column), so SQLite and PostgreSQL give identical answers
without dialect-specific date functions.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func
from sqlmodel import col, select

from pki.clock import utc
from pki.store.models import Certificate, CertStatus
from pki.store.repo import Database

MAX_BUCKETS = 260
"""Upper bound on buckets per query (five years of weeks): keeps the CASE expression and the response small."""


class Bucket(enum.StrEnum):
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class ExpiryBucket:
    start: dt.datetime
    end: dt.datetime  # exclusive
    counts: dict[str, int] = field(default_factory=dict)  # kind -> certificates expiring in [start, end)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ExpiryHistogram:
    bucket: Bucket
    start: dt.datetime
    end: dt.datetime
    buckets: list[ExpiryBucket]
    expired: dict[str, int]  # kind -> still marked valid but already past notAfter (before ``start``)

    @property
    def kinds(self) -> list[str]:
        found = set(self.expired)
        for b in self.buckets:
            found.update(b.counts)
        return sorted(found)


def bucket_start(moment: dt.datetime, bucket: Bucket) -> dt.datetime:
    """Start of the week (Monday 00:00 UTC, ISO 8601) or month (1st 00:00 UTC) containing ``moment``."""
    day = utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket is Bucket.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(start: dt.datetime, bucket: Bucket) -> dt.datetime:
    if bucket is Bucket.WEEK:
        return start + dt.timedelta(days=7)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def bucket_bounds(start: dt.datetime, bucket: Bucket, periods: int) -> list[dt.datetime]:
    """``periods + 1`` boundaries starting at the bucket containing ``start``."""
    if not 1 <= periods <= MAX_BUCKETS:
        raise ValueError(f"periods must be between 1 and {MAX_BUCKETS}")
    bounds = [bucket_start(start, bucket)]
    for _ in range(periods):
        bounds.append(_next(bounds[-1], bucket))
    return bounds


def expiry_histogram(db: Database, *, now: dt.datetime, bucket: Bucket = Bucket.WEEK, periods: int = 26,
                     kinds: list[str] | None = None, ca_id: int | None = None) -> ExpiryHistogram:
    """Valid certificates by the bucket their ``notAfter`` falls in, per kind, from the bucket containing ``now``.

    Only ``valid`` certificates count: revoked ones will never need renewal and pending/aborted ones were never
    released. Certificates whose ``notAfter`` is already before the first bucket are reported as ``expired``
    (still marked valid, so an operator sees what lapsed unnoticed).
    """
    bounds = bucket_bounds(now, bucket, periods)
    not_after = col(Certificate.not_after)
    index = case(
        *[(not_after < bounds[i + 1], i) for i in range(periods)],
        else_=periods,
    )
    with db.session() as s:
        base = [col(Certificate.status) == CertStatus.VALID]
        if kinds:
            base.append(col(Certificate.kind).in_(kinds))
        if ca_id is not None:
            base.append(col(Certificate.ca_id) == ca_id)
        in_range = select(index.label("i"), col(Certificate.kind), func.count()).where(
            and_(*base, not_after >= bounds[0], not_after < bounds[-1])
        ).group_by(index, col(Certificate.kind))
        counted = s.exec(in_range).all()
        before = select(col(Certificate.kind), func.count()).where(
            and_(*base, not_after < bounds[0])
        ).group_by(col(Certificate.kind))
        expired = {str(kind): int(n) for kind, n in s.exec(before).all()}
    per_bucket: list[dict[str, int]] = [{} for _ in range(periods)]
    for i, kind, n in counted:
        per_bucket[int(i)][str(kind)] = int(n)
    buckets = [ExpiryBucket(bounds[i], bounds[i + 1], per_bucket[i]) for i in range(periods)]
    return ExpiryHistogram(bucket=bucket, start=bounds[0], end=bounds[-1], buckets=buckets, expired=expired)
