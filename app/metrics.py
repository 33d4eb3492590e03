"""Prometheus metrics: requests by route and status, pool gauges and counters, and the
process's asyncio tasks, threads and open file descriptors (the leak probes read these).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.backpressure import READS
from app.connstats import CUT_OFF
from app.db import Database
from app.soldout import SoldOutBoard

__all__ = ["REFUSAL_BUCKET_OFFSETS", "Metrics"]

#: Buckets of the 503 latency histogram: the acquire timeout and the request deadline,
#: each plus these seconds, so a tool can count refusals later than a bound + its slack.
REFUSAL_BUCKET_OFFSETS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)

# psycopg_pool's counters, as exported names (zero counters may be absent from get_stats).
_POOL_COUNTERS = {
    "connections_lost": "db_pool_connections_lost",
    "returns_bad": "db_pool_returns_bad",
    "requests_errors": "db_pool_requests_errors",
    "requests_num": "db_pool_requests",
    "requests_queued": "db_pool_requests_queued",
    "connections_num": "db_pool_connections",
    "connections_errors": "db_pool_connections_errors",
}


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        return -1


class _RuntimeCollector(Collector):
    def __init__(self, db: Database, sold_out: SoldOutBoard | None) -> None:
        self._db = db
        self._sold_out = sold_out

    def collect(self) -> Iterator[Metric]:
        stats = self._db.pool.get_stats()
        for key, name in (
            ("pool_size", "db_pool_size"),
            ("pool_available", "db_pool_available"),
            ("requests_waiting", "db_pool_requests_waiting"),
        ):
            yield GaugeMetricFamily(name, f"psycopg_pool {key}", value=stats.get(key, 0))
        limits = GaugeMetricFamily(
            "service_limit",
            "configured limits (seconds or counts); tools derive bounds",
            labels=["name"],
        )
        cfg = self._db.settings
        for name, value in (
            ("db_pool_min_size", cfg.db_pool_min_size),
            ("db_pool_max_size", cfg.db_pool_max_size),
            ("db_pool_max_waiting", cfg.db_pool_max_waiting),
            ("db_pool_acquire_timeout", cfg.db_pool_acquire_timeout),
            ("db_statement_timeout", cfg.db_statement_timeout),
            ("db_connect_timeout", cfg.db_connect_timeout),
            ("db_reconnect_timeout", cfg.db_reconnect_timeout),
            ("request_deadline", cfg.request_deadline),
            ("health_timeout", cfg.health_timeout),
            ("retry_after", cfg.retry_after),
            ("sold_out_trust", cfg.sold_out_trust),
            ("http_max_in_progress", cfg.http_max_in_progress),
        ):
            limits.add_metric([name], float(value))
        yield limits
        for key, name in _POOL_COUNTERS.items():
            yield CounterMetricFamily(name, f"psycopg_pool {key}", value=stats.get(key, 0))
        yield CounterMetricFamily(
            "db_pool_checks_failed",
            "connections found dead by the check before use",
            value=self._db.checks_failed,
        )
        yield CounterMetricFamily(
            "db_sessions_discarded",
            "times a session answered a SQLSTATE it would repeat (25006 read-only) and the "
            "pool's sessions were closed and replaced",
            value=self._db.sessions_discarded,
        )
        admission = self._db.admission
        now = time.monotonic()
        yield GaugeMetricFamily(
            "db_admission_waiting", "requests waiting for a connection", value=admission.waiting
        )
        yield GaugeMetricFamily(
            "db_admission_units_ahead",
            "of the waiting, the units of work that may still need a connection (those of "
            "a coupon with a recently reported stock counted at most stock + 1)",
            value=admission.ahead,
        )
        yield GaugeMetricFamily(
            "db_admission_unit_seconds",
            "median time a recent unit of work held its connection",
            value=admission.unit_seconds(now),
        )
        yield GaugeMetricFamily(
            "db_admission_estimated_wait_seconds",
            "estimated wait of a newcomer: (units ahead + 1) x unit time / pool size",
            value=admission.estimated_wait(now),
        )
        refusals = CounterMetricFamily(
            "db_admission_refusals",
            "newcomers refused at once (503): the queue could not drain in time, or the "
            "memory guard on waiters",
            labels=["reason"],
        )
        for reason, count in admission.refusals.items():
            refusals.add_metric([reason], count)
        yield refusals
        if self._sold_out is not None:
            yield CounterMetricFamily(
                "coupon_claims_collapsed",
                "claims answered out of stock from a statement that found the coupon sold "
                "out after they arrived (no query of their own)",
                value=self._sold_out.collapsed,
            )
            yield CounterMetricFamily(
                "coupon_claims_remembered",
                "claims answered out of stock at arrival from the sold-out memory (no "
                "admission, slot or query)",
                value=self._sold_out.remembered,
            )
            yield GaugeMetricFamily(
                "coupon_sold_out_remembered",
                "coupon names the sold-out memory holds",
                value=len(self._sold_out),
            )
        yield GaugeMetricFamily(
            "http_requests_in_progress",
            "requests parsed and not yet finished, as the read gate counts them",
            value=READS.in_progress,
        )
        yield GaugeMetricFamily(
            "http_requests_held",
            "connections whose next request waits unread (HTTP_MAX_IN_PROGRESS reached)",
            value=READS.held,
        )
        yield CounterMetricFamily(
            "http_holds",
            "times a connection's request was held unread because HTTP_MAX_IN_PROGRESS "
            "requests were in progress",
            value=READS.held_total,
        )
        cut = CounterMetricFamily(
            "http_connections_cut_off",
            "client connections the server closed: over HTTP_MAX_CONNECTIONS, a head or "
            "body past its deadline, a head over HTTP_MAX_HEADER_BYTES, idle too long",
            labels=["reason"],
        )
        for reason, count in sorted(CUT_OFF.items()):
            cut.add_metric([reason], count)
        yield cut
        yield GaugeMetricFamily(
            "db_background_cleanups",
            "timed-out database work still cleaning up",
            value=self._db.pending_cleanups,
        )
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside the loop
            tasks = 0
        yield GaugeMetricFamily("process_asyncio_tasks", "asyncio tasks alive", value=tasks)
        yield GaugeMetricFamily("process_threads", "threads alive", value=threading.active_count())
        yield GaugeMetricFamily("process_fds", "open file descriptors", value=_open_fds())


class Metrics:
    """The service's registry (one per app, so tests can build several apps)."""

    def __init__(self, db: Database, sold_out: SoldOutBoard | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being served", registry=self.registry
        )
        cfg = db.settings
        self.refusal_latency = Histogram(
            "http_refusal_duration_seconds",
            "seconds from a request's start to its 503 answer (buckets: the acquire timeout "
            "and the request deadline, each plus REFUSAL_BUCKET_OFFSETS)",
            buckets=sorted(
                {
                    round(base + offset, 6)
                    for base in (cfg.db_pool_acquire_timeout, cfg.request_deadline)
                    for offset in REFUSAL_BUCKET_OFFSETS
                }
            ),
            registry=self.registry,
        )
        self.registry.register(_RuntimeCollector(db, sold_out))
