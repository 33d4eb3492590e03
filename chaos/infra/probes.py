"""Reading the service from outside: its limits and its leak figures, from /metrics and
pg_stat_activity."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chaos.core.limits import Limits
from chaos.errors import ChaosError, WaitTimeout
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.waiting import wait_for

__all__ = [
    "Leak",
    "Sessions",
    "Snapshot",
    "pool_counters",
    "read_limits",
    "read_metrics",
    "snapshot",
    "wait_for_baseline",
]


def read_limits(client: httpx.Client) -> Limits:
    """The limits the running service reports."""
    return Limits.from_metrics(read_metrics(client))


def read_metrics(client: httpx.Client) -> dict[str, float]:
    """Every sample of /metrics; labelled samples keyed `name{k=v,...}`."""
    try:
        resp = client.get("/metrics")
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise ChaosError(f"cannot read {client.base_url}metrics: {exc}") from exc
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Leak figures at one moment."""

    pool_size: int
    pool_available: int
    requests_waiting: int
    in_flight: int
    background_cleanups: int
    asyncio_tasks: int
    threads: int
    fds: int
    backends: int
    idle_in_transaction: int
    active_backends: int
    connections_lost: int
    returns_bad: int
    checks_failed: int
    connection_errors: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict, for reports."""
        return asdict(self)

    def counters(self) -> dict[str, int]:
        """The pool counters that prove a fault acted, by the evidence kind they give
        (chaos.scenarios.model.EVIDENCE_KINDS)."""
        return _by_evidence_kind(self.as_dict())


def _pool_counters(m: Mapping[str, float]) -> dict[str, int]:
    """The service's pool counters in /metrics, as Snapshot fields."""
    return {
        "connections_lost": int(m.get("db_pool_connections_lost_total", 0)),
        "returns_bad": int(m.get("db_pool_returns_bad_total", 0)),
        "checks_failed": int(m.get("db_pool_checks_failed_total", 0)),
        "connection_errors": int(m.get("db_pool_connections_errors_total", 0)),
    }


def pool_counters(client: httpx.Client) -> dict[str, int] | None:
    """`Snapshot.counters()` now, from /metrics alone; None when it does not answer."""
    try:
        m = read_metrics(client)
    except ChaosError:
        return None
    return _by_evidence_kind(_pool_counters(m))


def _by_evidence_kind(fields: Mapping[str, int]) -> dict[str, int]:
    return {
        "connections-lost": fields["connections_lost"] + fields["returns_bad"],
        "checks-failed": fields["checks_failed"],
        "connect-errors": fields["connection_errors"],
    }


Sessions = Callable[[], int]
"""Counts the service's database sessions where pg_stat_activity cannot (a pooler's
clients: its server sessions are its own)."""


def snapshot(
    client: httpx.Client, admin: PostgresAdmin, sessions: Sessions | None = None
) -> Snapshot:
    """Read the service's /metrics and its backends in pg_stat_activity; `backends` is
    `sessions()` when given."""
    m = read_metrics(client)
    backends = admin.backends()
    return Snapshot(
        pool_size=int(m.get("db_pool_size", 0)),
        pool_available=int(m.get("db_pool_available", 0)),
        # Waiting for a slot (the service's admission queue) or, holding one, for the pool.
        requests_waiting=int(m.get("db_admission_waiting", 0))
        + int(m.get("db_pool_requests_waiting", 0)),
        in_flight=int(m.get("http_requests_in_flight", 0)),
        background_cleanups=int(m.get("db_background_cleanups", 0)),
        asyncio_tasks=int(m.get("process_asyncio_tasks", 0)),
        threads=int(m.get("process_threads", 0)),
        fds=int(m.get("process_fds", 0)),
        backends=sessions() if sessions is not None else len(backends),
        idle_in_transaction=sum(1 for b in backends if b.state == "idle in transaction"),
        active_backends=sum(1 for b in backends if b.state == "active"),
        **_pool_counters(m),
    )


@dataclass(frozen=True, slots=True)
class Leak:
    """A figure that did not come back to its baseline."""

    name: str
    baseline: int
    now: int

    def __str__(self) -> str:
        return f"{self.name}: baseline {self.baseline}, now {self.now}"


def _leaks(base: Snapshot, now: Snapshot) -> list[Leak]:
    pairs = [
        ("pool_size", base.pool_size, now.pool_size, now.pool_size != base.pool_size),
        (
            "pool_available",
            base.pool_available,
            now.pool_available,
            now.pool_available < base.pool_available,
        ),
        ("requests_waiting", 0, now.requests_waiting, now.requests_waiting != 0),
        ("in_flight", 0, now.in_flight, now.in_flight != 0),
        ("background_cleanups", 0, now.background_cleanups, now.background_cleanups != 0),
        (
            "asyncio_tasks",
            base.asyncio_tasks,
            now.asyncio_tasks,
            now.asyncio_tasks > base.asyncio_tasks,
        ),
        ("threads", base.threads, now.threads, now.threads > base.threads),
        ("fds", base.fds, now.fds, now.fds > base.fds),
        ("backends", base.backends, now.backends, now.backends > base.backends),
        ("idle_in_transaction", 0, now.idle_in_transaction, now.idle_in_transaction != 0),
        ("active_backends", 0, now.active_backends, now.active_backends != 0),
    ]
    return [Leak(name, b, n) for name, b, n, bad in pairs if bad]


def wait_for_baseline(
    client: httpx.Client,
    admin: PostgresAdmin,
    baseline: Snapshot,
    *,
    timeout: float,
    sessions: Sessions | None = None,
) -> tuple[Snapshot, list[Leak], float]:
    """Wait until every figure is back at its baseline; return the last snapshot, the leaks
    left (empty when settled) and the seconds it took."""
    started = time.monotonic()
    last: list[Snapshot] = []

    def settled() -> bool:
        try:
            now = snapshot(client, admin, sessions)
        except ChaosError:
            return False  # a scrape that failed once (a busy service) is not the end
        last[:] = [now]
        return not _leaks(baseline, now)

    with suppress(WaitTimeout):
        wait_for(settled, timeout=timeout, what="service back at its baseline", interval=0.05)
    now = last[0] if last else snapshot(client, admin, sessions)
    return now, _leaks(baseline, now), time.monotonic() - started
