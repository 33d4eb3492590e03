"""Scenarios as data: a fault, a workload, the answers expected, and bounds derived from
the service's own limits.

Scenarios are usually declared in files (chaos.scenarios.loader; the built-in catalogue
is chaos/scenarios/catalogue.yaml); in Python the same declaration reads::

    Scenario(
        name="latency-above-deadline",
        description="Every answer delayed past the deadline: 504 at the deadline.",
        fault=NetworkToxic(Latency(latency_ms=2500)),
        expect=Expect(during={503, 504}, must_see={504}, latency={504: DEADLINE}),
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chaos.errors import ScenarioError
from chaos.scenarios.bounds import SLACK, Bound

if TYPE_CHECKING:
    from chaos.faults.base import Fault

__all__ = [
    "ACQUIRE",
    "DEADLINE",
    "EVIDENCE_KINDS",
    "HEALTH",
    "RECOVERY_BOUND",
    "SLACK",
    "Bound",
    "Expect",
    "Scenario",
    "Workload",
]

RECOVERY_BOUND = 2.0
"""Seconds from a fault's removal to the first successful request (DESIGN section 4)."""

ACQUIRE = Bound("acquire_timeout + slack")
DEADLINE = Bound("request_deadline + slack")
HEALTH = Bound("health_timeout + slack")

EVIDENCE_KINDS = frozenset(
    {
        "answers",
        "latency",
        "slow-failures",
        "connections-lost",
        "checks-failed",
        "connect-errors",
        "fault",
    }
)
"""What may prove that a fault acted (the `fault-observed` check):

- answers: an answer other than 200 to a request the fault touched;
- latency: the median latency of 200s during the fault above the warm-up's usual ceiling
  (the lower of its 95th percentile and Tukey's upper fence, Q3 + 1.5 IQR, so a few slow
  warm-up requests on a loaded machine cannot hide the fault);
- slow-failures: every other answer the fault touched slower than twice that ceiling
  (a request that finds its connection dead fails as fast as a success; one that waits
  on a close the network holds back fails late);
- connections-lost: connections broke while in use (the pool's connections_lost or
  returns_bad rose);
- checks-failed: connections were found dead by the check before use (checks_failed);
- connect-errors: the pool's connection attempts failed (connections_errors rose);
- fault: the fault reported acting itself (backends it terminated, locks it held).
"""


@dataclass(frozen=True, slots=True)
class Workload:
    """Traffic: `concurrency` clients, each request by a new user, over `keys` keys (coupons)
    of `stock` each; `warmup` successes before the fault."""

    concurrency: int = 8
    keys: int = 2
    stock: int = 1_000_000
    warmup: int = 20

    def __post_init__(self) -> None:
        for name in ("concurrency", "keys", "stock", "warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ScenarioError(f"workload.{name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class Expect:
    """What clients must see while the fault is on.

    `during`: every status allowed for requests overlapping the fault window.
    `must_see`: statuses that must appear at least once in that window.
    `latency`: per-status latency bounds (every request is also bounded by the deadline).
    `health`: the status /health must answer during the fault (within HEALTH).
    `timed_out_claims_absent`: 504 answers must have left nothing (the statement was
    cancelled and rolled back on the server).
    `observed`: the evidence kinds (EVIDENCE_KINDS) that prove this fault acted; any one
    suffices. Name only what the fault alone causes: a fault that also churns
    connections cannot count lost connections as its own evidence.
    """

    during: frozenset[int]
    must_see: frozenset[int] = frozenset()
    latency: Mapping[int, Bound] = field(default_factory=dict)
    health: int | None = None
    timed_out_claims_absent: bool = False
    observed: frozenset[str] = EVIDENCE_KINDS

    def __init__(
        self,
        *,
        during: set[int] | frozenset[int],
        must_see: set[int] | frozenset[int] = frozenset(),
        latency: Mapping[int, Bound] | None = None,
        health: int | None = None,
        timed_out_claims_absent: bool = False,
        observed: set[str] | frozenset[str] = EVIDENCE_KINDS,
    ) -> None:
        object.__setattr__(self, "during", frozenset(during))
        object.__setattr__(self, "must_see", frozenset(must_see))
        object.__setattr__(self, "latency", dict(latency or {}))
        object.__setattr__(self, "health", health)
        object.__setattr__(self, "timed_out_claims_absent", timed_out_claims_absent)
        object.__setattr__(self, "observed", frozenset(observed))
        if not self.during:
            raise ScenarioError("expect.during: expected at least one status")
        if not self.must_see <= self.during:
            raise ScenarioError(
                f"expect.must_see: {sorted(self.must_see)} not within during {sorted(self.during)}"
            )
        if not self.observed or not self.observed <= EVIDENCE_KINDS:
            raise ScenarioError(
                f"expect.observed: {sorted(self.observed)}; expected a non-empty subset of "
                f"{sorted(EVIDENCE_KINDS)}"
            )


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
