"""Scenarios as data: a fault, a workload, the answers expected, the stack it needs, and
bounds derived from the service's own limits (and the stack's names).

Scenarios are usually declared in files (chaos.scenarios.loader; the shipped ones are
chaos/scenarios/catalogue.yaml and ha.yaml); in Python the same declaration reads::

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
from typing import Literal

from chaos.core.bounds import ACQUIRE, DEADLINE, HEALTH, RECOVERY, SLACK, Bound
from chaos.core.lost_writes import LostWritePolicy
from chaos.errors import ScenarioError
from chaos.faults.base import Fault

__all__ = [
    "ACQUIRE",
    "ANY_STATUS",
    "DEADLINE",
    "EVIDENCE_KINDS",
    "HEALTH",
    "RECOVERY",
    "SLACK",
    "STACKS",
    "Bound",
    "Expect",
    "Scenario",
    "Workload",
]

FORBIDDEN = LostWritePolicy.forbidden()

ANY_STATUS = frozenset(range(100, 600))
"""`during: any`: every answer is allowed while the fault is on (`chaos explore` judges
everything else)."""

STACKS = ("any", "ha")
"""What a scenario may need: any stack (local, compose, external), or the HA stack."""

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
- slow-failures: the median of the other answers the fault touched slower than twice
  that ceiling (a request that finds its connection dead fails as fast as a success; one
  that waits on a close the network holds back fails late; the median, because a fault
  combined with connection churn also fails a few requests fast);
- connections-lost: connections broke while in use (the pool's connections_lost or
  returns_bad rose);
- checks-failed: connections were found dead by the check before use (checks_failed);
- connect-errors: the pool's connection attempts failed (connections_errors rose);
- fault: the fault reported acting itself (backends it terminated, locks it held).
"""


@dataclass(frozen=True, slots=True)
class Workload:
    """Traffic: `concurrency` clients, each operation by a new actor, round-robin over
    `keys` keys the target creates; `warmup` successes before the fault."""

    concurrency: int = 8
    keys: int = 2
    warmup: int = 20

    def __post_init__(self) -> None:
        for name in ("concurrency", "keys", "warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ScenarioError(f"workload.{name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class Expect:
    """What clients must see while the fault is on.

    `during`: every status allowed for requests overlapping the fault window.
    `must_see`: statuses that must appear at least once in that window.
    `touched`: when given, the statuses allowed for every request the fault touched
    (sent or answered while it was on, or overlapping its injection or removal), and
    then `during` may find no request both sent and answered inside the window: a fault
    that holds requests (PgBouncer's PAUSE) answers them only once it is over.
    `latency`: per-status latency bounds (every request is also bounded by the deadline).
    `health`: the status /health must answer during the fault (within HEALTH).
    `timed_out_absent`: writes answered 504 must have left nothing (the statement was
    cancelled and rolled back on the server).
    `observed`: the evidence kinds (EVIDENCE_KINDS) that prove this fault acted; any one
    suffices. Name only what the fault alone causes: a fault that also churns
    connections cannot count lost connections as its own evidence.
    `lost_writes`: the policy for acknowledged writes the settled database lacks
    (forbidden by default).
    `single_primary`: never two writable primaries at once (clustered stacks).
    `primary`: after the run the primary is another node (`changed`) or the same one
    (`unchanged`); not checked when None.
    `replicas_agree`: after the run every node holds the same writes as the primary
    (so every write with an unknown outcome was resolved the same way everywhere).
    """

    during: frozenset[int]
    must_see: frozenset[int] = frozenset()
    latency: Mapping[int, Bound] = field(default_factory=dict)
    health: int | None = None
    timed_out_absent: bool = False
    observed: frozenset[str] = EVIDENCE_KINDS
    lost_writes: LostWritePolicy = FORBIDDEN
    single_primary: bool = False
    primary: Literal["changed", "unchanged"] | None = None
    replicas_agree: bool = False
    touched: frozenset[int] | None = None

    def __init__(
        self,
        *,
        during: set[int] | frozenset[int],
        must_see: set[int] | frozenset[int] = frozenset(),
        latency: Mapping[int, Bound] | None = None,
        health: int | None = None,
        timed_out_absent: bool = False,
        observed: set[str] | frozenset[str] = EVIDENCE_KINDS,
        lost_writes: LostWritePolicy | None = None,
        single_primary: bool = False,
        primary: Literal["changed", "unchanged"] | None = None,
        replicas_agree: bool = False,
        touched: set[int] | frozenset[int] | None = None,
    ) -> None:
        object.__setattr__(self, "during", frozenset(during))
        object.__setattr__(self, "touched", None if touched is None else frozenset(touched))
        object.__setattr__(self, "must_see", frozenset(must_see))
        object.__setattr__(self, "latency", dict(latency or {}))
        object.__setattr__(self, "health", health)
        object.__setattr__(self, "timed_out_absent", timed_out_absent)
        object.__setattr__(self, "observed", frozenset(observed))
        object.__setattr__(self, "lost_writes", lost_writes or LostWritePolicy.forbidden())
        object.__setattr__(self, "single_primary", single_primary)
        object.__setattr__(self, "primary", primary)
        object.__setattr__(self, "replicas_agree", replicas_agree)
        if primary not in (None, "changed", "unchanged"):
            raise ScenarioError(f"expect.primary: expected changed or unchanged, got {primary!r}")
        if not self.during:
            raise ScenarioError("expect.during: expected at least one status")
        if not self.must_see <= self.during:
            raise ScenarioError(
                f"expect.must_see: {sorted(self.must_see)} not within during {sorted(self.during)}"
            )
        if self.touched is not None and not self.touched:
            raise ScenarioError("expect.touched: expected at least one status")
        if not self.observed or not self.observed <= EVIDENCE_KINDS:
            raise ScenarioError(
                f"expect.observed: {sorted(self.observed)}; expected a non-empty subset of "
                f"{sorted(EVIDENCE_KINDS)}"
            )


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fault, its workload, what clients must see, the recovery bound, and the stack.

    `duration`: seconds the fault stays on after `inject` returned; with `until`
    (status -> count), the fault stays on until that many answers of each status came
    after it took effect, `duration` seconds at most.
    `recovery_bound`: from the fault's end (its `over` event, else its removal) to the
    first success.
    `stack`: `any`, or `ha` (run only by `chaos run --stack ha`); `stack_settings`: what
    the stack applies before the run (the HA stack: Patroni's settings); `router` and
    `router_settings`: the HA stack's router the scenario needs, and its settings.
    `service_settings`: the service's settings (environment variables) for this scenario
    over the stack's; the stack restarts the service with them, and without them after.
    """

    name: str
    description: str
    fault: Fault
    expect: Expect
    workload: Workload = Workload()
    duration: float = 2.5
    recovery_bound: Bound = RECOVERY
    stack: str = "any"
    stack_settings: Mapping[str, object] = field(default_factory=dict)
    until: Mapping[int, int] = field(default_factory=dict)
    router: str | None = None
    """The router the scenario needs on the HA stack (`haproxy`...); None: any."""
    router_settings: Mapping[str, object] = field(default_factory=dict)
    """What the router applies before the run (HAProxy's check settings)."""
    service_settings: Mapping[str, str] = field(default_factory=dict)
    """The service's settings for this scenario (`{"REQUEST_DEADLINE": "20"}`)."""

    def __post_init__(self) -> None:
        if self.stack not in STACKS:
            raise ScenarioError(f"stack: expected one of {', '.join(STACKS)}, got {self.stack!r}")

    def expected_text(self) -> str:
        """The expected answers, for tables."""
        if self.expect.during == ANY_STATUS:
            return "any"
        must = f" (must see {','.join(map(str, sorted(self.expect.must_see)))})"
        return ",".join(map(str, sorted(self.expect.during))) + (
            must if self.expect.must_see else ""
        )
