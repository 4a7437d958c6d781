"""OCSP responder metrics, counted on the lean ASGI path and exported at scrape time.

The responder answers ~20k requests/s per process; a prometheus_client Counter/Histogram per request (a lock and
label lookup each) would be a measurable part of its ~27 µs path. So the hot path does plain integer arithmetic on
this object (one event loop thread writes it) and :class:`OcspCollector` turns it into metric families when
``/metrics`` is scraped.

Outcomes: ``cached`` (a pre-signed response from memory, including 304s), ``signed`` (signed on demand: nonce,
several CertIDs, or a cache miss), ``try_later`` (overload or the store unavailable), ``error`` (malformedRequest,
unauthorized) and ``rejected`` (HTTP-level misuse: 405/413/415). The cache hit ratio is cached / (cached + signed).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
OUTCOMES = ("cached", "signed", "try_later", "error", "rejected")


class OcspStats:
    __slots__ = ("buckets", "counts", "total_seconds")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total_seconds = 0.0

    def observe(self, outcome: str, seconds: float) -> None:
        self.counts[outcome] += 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total_seconds += seconds


class OcspCollector(Collector):
    def __init__(self, stats: OcspStats, services_getter: Callable[[], Any]) -> None:
        self.stats = stats
        self._services = services_getter

    def collect(self) -> Iterator[Any]:
        counts = dict(self.stats.counts)
        requests = CounterMetricFamily("pnc_ocsp_requests", "OCSP requests by outcome", labels=["outcome"])
        for outcome in OUTCOMES:
            requests.add_metric([outcome], counts[outcome])
        yield requests
        cumulative, running = [], 0
        for bound, n in zip((*BUCKETS, float("inf")), self.stats.buckets, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily("pnc_ocsp_request_seconds", "OCSP request latency inside the service",
                                    buckets=cumulative, sum_value=self.stats.total_seconds)
        answered = counts["cached"] + counts["signed"]
        yield GaugeMetricFamily("pnc_ocsp_cache_hit_ratio", "Share of OCSP answers served pre-signed from memory "
                                "since start", value=counts["cached"] / answered if answered else 0.0)
        services = self._services()
        if services is not None:
            yield GaugeMetricFamily("pnc_ocsp_cached_responses", "Pre-signed OCSP responses held in memory",
                                    value=services.ocsp.cached_count)
