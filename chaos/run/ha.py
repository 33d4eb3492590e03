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

import httpx

from chaos.checks.base import CheckResult
from chaos.checks.lost_writes import LostWritePolicy, LostWriteReport, find_lost_writes
from chaos.checks.probes import CANCEL_AND_DRAIN, Snapshot, snapshot, wait_for_baseline
from chaos.errors import ChaosError
from chaos.infra.ha_stack import HaStack
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.timing import START_TIMEOUT
from chaos.infra.waiting import wait_for
from chaos.run.ha_monitor import RoleMonitor
from chaos.run.history import Operation
from chaos.run.workload import LiveWorkload
from chaos.targets.coupons import CouponState, check_history, claim_once, read_state

__all__ = ["LEAK_SETTLE_TIMEOUT", "HaRun", "HaVerdict", "no_hang"]

#: How long the service may take to come back to its leak baseline after a run: a
#: timed-out claim's cleanup (psycopg's cancel, then the drain) against a silent
#: server, plus slack for the pool's reconnections.
LEAK_SETTLE_TIMEOUT = CANCEL_AND_DRAIN + 5.0


def no_hang(ops: Sequence[Operation], *, max_latency: float) -> CheckResult:
    """Every claim answered, none later than `max_latency` seconds."""
    slow = [
        (op.user_id, op.label, round(op.latency, 3))
        for op in ops
        if op.latency > max_latency or op.status is None
    ]
    return CheckResult(
        "no-hang",
        not slow,
        f"{len(slow)} of {len(ops)} claims over {max_latency:.2f} s or without an answer: "
        + ", ".join(map(str, slow[:5])),
    )


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
            claim_once,
            concurrency=concurrency,
            client_timeout=client_timeout,
            clock_zero=self.clock_zero,
            user_prefix=f"{user_prefix}-{time.monotonic_ns()}",
        )
        self._stopped = False
        self._baseline: Snapshot | None = None

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

    def _probe(self) -> tuple[httpx.Client, PostgresAdmin]:
        # The service's backends live on whichever node is primary now.
        leader = self.stack.wait_for_leader(timeout=LEAK_SETTLE_TIMEOUT)
        client = httpx.Client(base_url=self.stack.endpoints.service_url, timeout=5.0)
        return client, PostgresAdmin(self.stack.node(leader).direct_url)

    def start(self) -> HaRun:
        """Take the service's leak baseline, start the monitor, then the traffic."""
        client, admin = self._probe()
        with client, admin:
            self._baseline = snapshot(client, admin)
        self.monitor.start()
        try:
            self.workload.start(timeout=START_TIMEOUT)
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

    def leak_check(self) -> CheckResult:
        """The service back at its baseline (pool, requests, tasks, fds, backends on
        the current primary), waited for with a deadline."""
        if self._baseline is None:
            raise ChaosError("leak check before start()")
        client, admin = self._probe()
        with client, admin:
            _, leaks, took = wait_for_baseline(
                client, admin, self._baseline, timeout=LEAK_SETTLE_TIMEOUT
            )
        return CheckResult(
            "service-back-at-baseline",
            not leaks,
            f"settled in {took:.2f} s; leaks: {[str(leak) for leak in leaks] or 'none'}",
        )

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
        checks = [c for c in check_history(ops, state) if c.name != "acknowledged-claims-present"]
        checks.append(no_hang(ops, max_latency=max_latency))
        checks.append(report.check())
        checks.append(self.leak_check())
        checks.extend(extra)
        roles = [(s.time, s.node, s.role) for s in self.monitor.role_changes()]
        return HaVerdict(checks=checks, lost_writes=report, events=dict(self.events), roles=roles)
