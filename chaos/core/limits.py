"""The service's limits, as it reports them (its `service_limit` gauges), and the one
literal of the timing model; every bound of the toolkit is derived from these."""

from __future__ import annotations

from dataclasses import dataclass

from chaos.errors import ChaosError

__all__ = ["CANCEL_AND_DRAIN", "Limits"]

CANCEL_AND_DRAIN = 10.0
"""Seconds psycopg spends on abandoned work against a silent server: its cancel request
times out after 5 s, then its drain after 5 s more (measured; docs/design.md, "Timing
model"). The one literal of the timing model; every other bound is derived from it and the service's
limits."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's configured limits, read from its `service_limit` gauges."""

    pool_max_size: int
    pool_min_size: int
    pool_max_waiting: int
    acquire_timeout: float
    statement_timeout: float
    connect_timeout: float
    request_deadline: float
    health_timeout: float
    retry_after: int
    reconnect_timeout: float
    """How long the pool retries a lost connection before starting a fresh attempt."""

    @property
    def cleanup_bound(self) -> float:
        """Seconds after which any request's work has finished, cleanup included: the
        deadline, then psycopg's cancel and drain of the abandoned work."""
        return self.request_deadline + CANCEL_AND_DRAIN

    @property
    def settle_bound(self) -> float:
        """Seconds the leak probes wait for the baseline (twice the cleanup bound: work
        abandoned at the end of a fault may start its cleanup one bound late)."""
        return 2 * self.cleanup_bound

    @classmethod
    def from_metrics(cls, metrics: dict[str, float]) -> Limits:
        """Parse the `service_limit{name=...}` samples."""

        def get(name: str) -> float:
            try:
                return metrics[f"service_limit{{name={name}}}"]
            except KeyError as exc:
                raise ChaosError(f"service exports no limit {name!r}") from exc

        return cls(
            pool_max_size=int(get("db_pool_max_size")),
            pool_min_size=int(get("db_pool_min_size")),
            pool_max_waiting=int(get("db_pool_max_waiting")),
            acquire_timeout=get("db_pool_acquire_timeout"),
            statement_timeout=get("db_statement_timeout"),
            connect_timeout=get("db_connect_timeout"),
            request_deadline=get("request_deadline"),
            health_timeout=get("health_timeout"),
            retry_after=int(get("retry_after")),
            reconnect_timeout=get("db_reconnect_timeout"),
        )
