"""What one scenario run saw and checked."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from chaos.checks.base import CheckResult
from chaos.checks.probes import Limits, Snapshot
from chaos.run.history import Operation
from chaos.scenarios.model import Scenario

__all__ = ["ScenarioResult", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """Percentile `q` (1..99, inclusive method) of `values`; None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class ScenarioResult:
    """Everything a run saw; times are seconds since the run's clock zero."""

    scenario: Scenario
    run_id: str
    started_at: str
    limits: Limits
    inject_began: float = 0.0
    fault_start: float = 0.0
    """When inject() returned: the fault is in effect."""
    fault_end: float = 0.0
    """When remove() began."""
    lifted: float = 0.0
    """When remove() returned: recovery is measured from here."""
    recovered_at: float | None = None
    operations: list[Operation] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    baseline: Snapshot | None = None
    after: Snapshot | None = None
    settle_seconds: float = 0.0
    health_during: tuple[int | None, float] | None = None
    notes: dict[str, object] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    """What the fault reported doing itself (see FaultContext.evidence)."""
    wall_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every check passed (a run without checks did not pass)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        """One check by name."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def before(self) -> list[Operation]:
        """Requests answered before the fault's injection began (the warm-up)."""
        return [op for op in self.operations if op.end <= self.inject_began]

    def during(self) -> list[Operation]:
        """Requests sent and answered while the fault was fully in effect."""
        return [op for op in self.operations if self._inside(op)]

    def _inside(self, op: Operation) -> bool:
        return self.fault_start <= op.start and op.end <= self.fault_end

    def transition(self) -> list[Operation]:
        """Requests that overlapped the fault's injection or removal without being `during`."""
        return [
            op
            for op in self.operations
            if op.end > self.inject_began and op.start < self.lifted and not self._inside(op)
        ]

    def statuses_during(self) -> Counter[str]:
        """Answers by status during the fault window."""
        return Counter(op.label for op in self.during())

    @property
    def time_to_recover(self) -> float | None:
        """Seconds from the fault's removal to the end of the first successful request."""
        return None if self.recovered_at is None else self.recovered_at - self.lifted

    def time_to_fail(self, q: float) -> float | None:
        """Percentile `q` of the latency of failed requests during the fault."""
        return percentile([op.latency for op in self.during() if op.status != 200], q)

    def summary(self) -> str:
        """One paragraph for a failing assertion."""
        lines = [
            f"scenario {self.scenario.name} (run {self.run_id}): fault "
            f"{self.scenario.fault.kind} from {self.fault_start:.2f} s to {self.fault_end:.2f} s",
            f"  during: {dict(self.statuses_during())}; expected {self.scenario.expected_text()}",
            f"  time to recover: {self.time_to_recover}",
        ]
        lines += [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)
