"""Scenarios as data: a fault, a workload, the answers expected, and bounds derived from
the service's own limits.

Adding a scenario is a declaration (see chaos/catalogue.py)::

    Scenario(
        name="latency-above-deadline",
        description="Every answer delayed past the deadline: 504 at the deadline, never a hang.",
        fault=NetworkToxic(Latency(latency_ms=2500)),
        expect=Expect(during={503, 504}, must_see={504}, latency={504: DEADLINE}),
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaos.checks.probes import Limits
from chaos.errors import ScenarioError

if TYPE_CHECKING:
    from chaos.faults.builtin import Fault

__all__ = [
    "ACQUIRE",
    "DEADLINE",
    "HEALTH",
    "RECOVERY_BOUND",
    "SETTLE_BOUND",
    "SLACK",
    "Bound",
    "Expect",
    "Scenario",
    "Workload",
]

SLACK = 0.5
"""Seconds allowed on top of a configured bound: HTTP, event loop, a loaded 2-core box."""

RECOVERY_BOUND = 2.0
"""Seconds from a fault's removal to the first successful claim (DESIGN section 4)."""

SETTLE_BOUND = 20.0
"""Seconds the leak probes wait for the baseline. Abandoned work's cleanup is bounded by
psycopg's cancel (5 s) plus its drain (5 s) after the deadline; twice that, rounded up."""


@dataclass(frozen=True, slots=True)
class Bound:
    """An upper bound on latency: one of the service's limits, plus SLACK."""

    limit: str
    extra: float = 0.0

    def seconds(self, limits: Limits) -> float:
        """The bound for a service with these limits."""
        try:
            base = float(getattr(limits, self.limit))
        except AttributeError as exc:
            raise ScenarioError(f"no service limit named {self.limit!r}") from exc
        return base + self.extra + SLACK

    def __str__(self) -> str:
        extra = f" + {self.extra:g} s" if self.extra else ""
        return f"{self.limit}{extra} + {SLACK:g} s slack"


ACQUIRE = Bound("acquire_timeout")
DEADLINE = Bound("request_deadline")
HEALTH = Bound("health_timeout")


@dataclass(frozen=True, slots=True)
class Workload:
    """Claim traffic: `concurrency` clients, each claim by a new user, over `coupons`."""

    concurrency: int = 8
    coupons: int = 2
    stock: int = 1_000_000
    warmup_claims: int = 20

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.coupons < 1 or self.stock < 1:
            raise ScenarioError(f"workload needs positive numbers, got {self}")


@dataclass(frozen=True, slots=True)
class Expect:
    """What clients must see while the fault is on.

    `during`: every status allowed for claims overlapping the fault window.
    `must_see`: statuses that must appear at least once in that window.
    `latency`: per-status latency bounds (every claim is also bounded by the deadline).
    `health`: the status /health must answer during the fault (within HEALTH).
    `timed_out_claims_absent`: 504 claims must have left no claim (the statement was
    cancelled and rolled back on the server).
    """

    during: frozenset[int]
    must_see: frozenset[int] = frozenset()
    latency: Mapping[int, Bound] = field(default_factory=dict)
    health: int | None = None
    timed_out_claims_absent: bool = False

    def __init__(
        self,
        *,
        during: set[int] | frozenset[int],
        must_see: set[int] | frozenset[int] = frozenset(),
        latency: Mapping[int, Bound] | None = None,
        health: int | None = None,
        timed_out_claims_absent: bool = False,
    ) -> None:
        object.__setattr__(self, "during", frozenset(during))
        object.__setattr__(self, "must_see", frozenset(must_see))
        object.__setattr__(self, "latency", dict(latency or {}))
        object.__setattr__(self, "health", health)
        object.__setattr__(self, "timed_out_claims_absent", timed_out_claims_absent)
        if not self.must_see <= self.during:
            raise ScenarioError(f"must_see {set(self.must_see)} not within {set(self.during)}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fault, its workload, what clients must see, and the recovery bound."""

    name: str
    description: str
    fault: Fault
    expect: Expect
    workload: Workload = Workload()
    duration: float = 2.5
    recovery_bound: float = RECOVERY_BOUND

    def expected_text(self) -> str:
        """The expected answers, for tables."""
        must = f" (must see {','.join(map(str, sorted(self.expect.must_see)))})"
        return ",".join(map(str, sorted(self.expect.during))) + (
            must if self.expect.must_see else ""
        )
