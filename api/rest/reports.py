"""Operator reports: aggregates for dashboards and the console (read roles only).

Included in the app *before* the certificates router: ``/api/v1/certificates/{cert_id}`` would otherwise capture
``expiry-histogram`` as an id and answer 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.deps import READ_ROLES, Actor, ServicesDep, require
from pki.errors import InvalidRequest
from pki.profiles import CertKind
from pki.store import reports

router = APIRouter(prefix="/api/v1/certificates", tags=["reports"])
Reader = Annotated[Actor, Depends(require(*READ_ROLES))]


class ExpiryBucketOut(BaseModel):
    start: dt.datetime
    end: dt.datetime = Field(description="exclusive")
    counts: dict[str, int] = Field(description="certificate kind -> valid certificates expiring in [start, end)")
    total: int


class ExpiryHistogramOut(BaseModel):
    bucket: reports.Bucket
    start: dt.datetime
    end: dt.datetime
    kinds: list[str] = Field(description="kinds that occur in any bucket or in expired, sorted")
    expired: dict[str, int] = Field(description="kind -> still valid but notAfter before start (lapsed unnoticed)")
    buckets: list[ExpiryBucketOut]


@router.get("/expiry-histogram", response_model=ExpiryHistogramOut,
            summary="Valid certificates by notAfter week/month and kind")
def expiry_histogram(
    services: ServicesDep,
    _: Reader,
    bucket: reports.Bucket = reports.Bucket.WEEK,
    periods: Annotated[int | None, Query(ge=1, le=reports.MAX_BUCKETS,
                                         description="number of buckets (default 26 weeks or 24 months)")] = None,
    kind: Annotated[list[str] | None, Query(description="repeat to select several kinds")] = None,
    issuer: Annotated[str | None, Query(max_length=64)] = None,
) -> ExpiryHistogramOut:
    known = {k.value for k in CertKind}
    for k in kind or []:
        if k not in known:
            raise InvalidRequest(f"unknown certificate kind {k!r}")
    ca_id = services.authority.ca(issuer).id if issuer else None
    n = periods or (26 if bucket is reports.Bucket.WEEK else 24)
    hist = reports.expiry_histogram(services.db, now=services.authority.clock.now(), bucket=bucket, periods=n,
                                    kinds=kind, ca_id=ca_id)
    return ExpiryHistogramOut(
        bucket=hist.bucket, start=hist.start, end=hist.end, kinds=hist.kinds, expired=hist.expired,
        buckets=[ExpiryBucketOut(start=b.start, end=b.end, counts=b.counts, total=b.total) for b in hist.buckets],
    )
