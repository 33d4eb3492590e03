"""What one scenario run saw and checked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from chaos.core.checks import CheckResult
from chaos.core.history import Operation, percentile
from chaos.core.limits import Limits
from chaos.core.lost_writes import LostWriteReport
from chaos.infra.probes import Snapshot
from chaos.infra.roles import RoleSample
from chaos.scenarios.model import Scenario

__all__ = ["ScenarioResult"]


@dataclass
class ScenarioResult:
    """Everything a run saw; times are seconds since the run's clock zero."""

    scenario: Scenario
    run_id: str
    started_at: str
    limits: Limits
    inject_began: float = 0.0
    fault_start: float = 0.0
    """When the fault took effect: its `in-effect` event, else when inject() returned."""
    fault_end: float = 0.0
    """When its effect on clients ended: its `over` event, else when remove() began."""
    lifted: float = 0.0
    """When remove() returned."""
    recovery_from: float = 0.0
    """Where recovery is measured from: the `over` event, else `lifted`."""
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
    events: dict[str, float] = field(default_factory=dict)
    """Named moments on the run clock: the engine's (inject, in-effect, over, lifted,
    recovered, settled) and the fault's (crash, promotion, partition...)."""
    roles: list[RoleSample] = field(default_factory=list)
    """Role changes of the nodes (clustered stacks): who was primary when."""
    nodes: list[str] = field(default_factory=list)
    lost_writes: LostWriteReport | None = None
    bound_names: dict[str, float] = field(default_factory=dict)
    """The stack's names in bound expressions, with the values they had."""
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

    def touched(self) -> list[Operation]:
        """Requests the fault touched: during it, or overlapping its injection or removal.
        The answer checks judge this set."""
        return self.during() + self.transition()

    def statuses_during(self) -> Counter[str]:
        """Answers by status during the fault window."""
        return Counter(op.label for op in self.during())

    def statuses_touched(self) -> Counter[str]:
        """Answers by status of the requests the fault touched (what the checks judged)."""
        return Counter(op.label for op in self.touched())

    @property
    def time_to_recover(self) -> float | None:
        """Seconds from the fault's end (`recovery_from`) to the end of the first
        successful request."""
        return None if self.recovered_at is None else self.recovered_at - self.recovery_from

    def time_to_fail(self, q: float) -> float | None:
        """Percentile `q` of the latency of failed requests the fault touched."""
        return percentile([op.latency for op in self.touched() if op.status != 200], q)

    def summary(self) -> str:
        """One paragraph for a failing assertion."""
        lines = [
            f"scenario {self.scenario.name} (run {self.run_id}): fault "
            f"{self.scenario.fault.kind} from {self.fault_start:.2f} s to {self.fault_end:.2f} s",
            f"  touched by the fault: {dict(self.statuses_touched())}; expected "
            f"{self.scenario.expected_text()}",
            f"  time to recover: {self.time_to_recover}",
        ]
        lines += [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)
