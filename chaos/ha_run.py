"""One HA scenario run: claim traffic and the role monitor on one clock, named events,
and the settled cluster's verdict (invariants and lost writes).

A scenario starts a run, waits for conditions (claims acknowledged, a promotion),
marks its events (partition, crash, promotion, rejoin, recovery) and, once the
cluster has settled, reads the state from the primary and judges the history.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from chaos.checkers import CheckResult, CouponState, check_history, read_state
from chaos.errors import ChaosError
from chaos.ha_monitor import RoleMonitor
from chaos.ha_stack import HaStack
from chaos.history import Operation
from chaos.lost_writes import LostWritePolicy, LostWriteReport, find_lost_writes
from chaos.postgres import PostgresAdmin
from chaos.waiting import wait_for
from chaos.workload import LiveWorkload

__all__ = ["HaRun", "HaVerdict"]


@dataclass
class HaVerdict:
    """What a run found: its checks, the lost-write report, events and role changes."""

    checks: list[CheckResult]
    lost_writes: LostWriteReport
    events: dict[str, float]
    roles: list[tuple[float, str, str | None]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        """Every check on its own line, then the events and role changes."""
        lines = [f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        lines.append("events: " + ", ".join(f"{k}={v:.2f}" for k, v in self.events.items()))
        lines.append("roles: " + ", ".join(f"{t:.2f} {n}={r}" for t, n, r in self.roles))
        return "\n".join(lines)


class HaRun:
    """Claims against the service and the role monitor, from `start()` to `stop()`."""

    def __init__(
        self,
        stack: HaStack,
        coupons: Sequence[str],
        *,
        concurrency: int = 8,
        client_timeout: float = 30.0,
        user_prefix: str = "ha",
    ) -> None:
        self.stack = stack
        self.coupons = list(coupons)
        self.clock_zero = time.monotonic()
        self.events: dict[str, float] = {}
        self.monitor = RoleMonitor(
            {n.name: n.direct_url for n in stack.nodes}, clock_zero=self.clock_zero
        )
        self.workload = LiveWorkload(
            stack.endpoints.service_url,
            self.coupons,
            concurrency=concurrency,
            client_timeout=client_timeout,
            clock_zero=self.clock_zero,
            user_prefix=f"{user_prefix}-{time.monotonic_ns()}",
        )
        self._stopped = False

    def now(self) -> float:
        """Seconds on the run's clock."""
        return time.monotonic() - self.clock_zero

    def at(self, monotonic: float) -> float:
        """A `time.monotonic()` reading on the run's clock."""
        return monotonic - self.clock_zero

    def mark(self, event: str, at: float | None = None) -> float:
        """Record an event (now, or at a run-clock time); returns its time."""
        self.events[event] = self.now() if at is None else at
        return self.events[event]

    def start(self) -> HaRun:
        """Start the monitor, then the traffic."""
        self.monitor.start()
        try:
            self.workload.start()
        except BaseException:
            self.monitor.stop()
            raise
        return self

    def stop(self, *, timeout: float = 60.0) -> None:
        """Stop the traffic (claims in flight finish), then the monitor. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.workload.stop(timeout=timeout)
        finally:
            self.monitor.stop()

    def __enter__(self) -> HaRun:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def operations(self) -> list[Operation]:
        """The claims so far."""
        return self.workload.operations()

    def acknowledged_since(self, since: float) -> list[Operation]:
        """Claims answered 200 at or after `since` (run clock)."""
        return [op for op in self.operations() if op.status == 200 and op.end >= since]

    def wait_acknowledged(self, count: int, *, since: float, timeout: float) -> float:
        """Wait until `count` claims were answered 200 after `since`; when the last came."""

        def enough() -> float | None:
            acked = sorted(op.end for op in self.acknowledged_since(since))
            return acked[count - 1] if len(acked) >= count else None

        try:
            return wait_for(
                enough, timeout=timeout, what=f"{count} claims acknowledged", interval=0.05
            )
        except ChaosError as exc:
            raise ChaosError(f"{exc}; statuses since {since:.2f}: {self.statuses(since)}") from exc

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        """How many claims started in [since, until) ended with each status."""
        counts: dict[str, int] = {}
        for op in self.operations():
            if since <= op.start < until:
                counts[op.label] = counts.get(op.label, 0) + 1
        return dict(sorted(counts.items()))

    def settled_state(self, *, timeout: float) -> CouponState:
        """The coupons and claims as the current primary holds them."""
        leader = self.stack.wait_for_leader(timeout=timeout)
        with PostgresAdmin(self.stack.node(leader).direct_url) as admin:
            return read_state(admin, self.coupons)

    def verdict(
        self,
        state: CouponState,
        *,
        policy: LostWritePolicy,
        max_latency: float,
        extra: Sequence[CheckResult] = (),
    ) -> HaVerdict:
        """The invariant checks (acknowledged-claims-present judged by the lost-write
        policy instead), the lost-write report, and the scenario's own checks."""
        ops = self.operations()
        report = find_lost_writes(
            ops, state, policy=policy, primary_at=self.monitor.last_primary_by
        )
        checks = [
            c
            for c in check_history(ops, state, max_latency=max_latency)
            if c.name != "acknowledged-claims-present"
        ]
        checks.append(report.check())
        checks.extend(extra)
        roles = [(s.time, s.node, s.role) for s in self.monitor.role_changes()]
        return HaVerdict(checks=checks, lost_writes=report, events=dict(self.events), roles=roles)
