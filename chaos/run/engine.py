"""The one engine that runs a scenario; pytest and the command line share it.

A run: create the run's coupons; wait until the service is idle and take the leak
baseline; start the claim workload and wait for warm-up successes; inject the fault,
keep it for the scenario's duration (probing /health halfway), remove it; wait for the
first successful claim (time to recover); let a few more claims finish; stop the
workload; wait for the leak figures to return to the baseline; run every check.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx

from chaos.checks.checkers import CheckResult, check_history, check_timed_out_absent, read_state
from chaos.checks.probes import Limits, Snapshot, read_metrics, snapshot, wait_for_baseline
from chaos.errors import ChaosError, ScenarioError, WaitTimeout
from chaos.faults.builtin import FaultContext
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for
from chaos.run.history import Operation
from chaos.run.workload import LiveWorkload
from chaos.scenarios.model import DEADLINE, HEALTH, SETTLE_BOUND, Scenario

__all__ = ["REQUIRED_CHECKS", "ScenarioResult", "ScenarioRun", "run_scenario", "run_selection"]

#: Checks every result must carry: statuses, database state, leaks and recovery.
REQUIRED_CHECKS = (
    "answers-during-fault",
    "acknowledged-claims-present",
    "conservation",
    "no-hang",
    "no-leaks",
    "recovery",
)


def _percentile(values: list[float], q: float) -> float | None:
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
    wall_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        """One check by name."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def during(self) -> list[Operation]:
        """Claims sent and answered while the fault was fully in effect."""
        return [op for op in self.operations if self._inside(op)]

    def _inside(self, op: Operation) -> bool:
        return self.fault_start <= op.start and op.end <= self.fault_end

    def transition(self) -> list[Operation]:
        """Claims that overlapped the fault's injection or removal without being `during`."""
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
        """Seconds from the fault's removal to the end of the first successful claim."""
        return None if self.recovered_at is None else self.recovered_at - self.lifted

    def time_to_fail(self, q: float) -> float | None:
        """Percentile `q` of the latency of failed claims during the fault."""
        return _percentile([op.latency for op in self.during() if op.status != 200], q)

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


def run_scenario(
    stack: Stack,
    scenario: Scenario,
    *,
    toxiproxy: ToxiproxyClient,
    admin: PostgresAdmin,
    service: httpx.Client,
    limits: Limits,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Run one scenario against a started stack and return what it saw and checked."""
    say = progress or (lambda _msg: None)
    run_id = uuid.uuid4().hex[:8]
    zero = time.monotonic()
    result = ScenarioResult(
        scenario=scenario,
        run_id=run_id,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        limits=limits,
    )
    wl = scenario.workload
    coupons: list[str] = []

    def create_coupon(suffix: str, amount: int) -> str:
        name = f"{scenario.name}-{run_id}-{suffix}"
        resp = service.post("/api/coupons", json={"name": name, "amount": amount})
        if resp.status_code != 201:
            raise ScenarioError(f"creating coupon {name} answered {resp.status_code}: {resp.text}")
        coupons.append(name)
        return name

    for k in range(wl.coupons):
        create_coupon(str(k), wl.stock)
    workload_coupons = list(coupons)

    say("waiting for an idle service (baseline)")
    result.baseline = _idle_baseline(service, admin, limits)
    workload = LiveWorkload(
        stack.endpoints.service_url,
        workload_coupons,
        concurrency=wl.concurrency,
        client_timeout=limits.request_deadline * 3 + 10.0,
        clock_zero=zero,
        user_prefix=f"u-{run_id}",
    )
    ctx = FaultContext(
        stack=stack,
        toxiproxy=toxiproxy,
        admin=admin,
        limits=limits,
        workload=workload,
        coupons=workload_coupons,
        run_id=run_id,
        service=service,
        create_coupon=create_coupon,
    )
    workload.start()
    try:
        _await_ok(workload, wl.warmup_claims, after=0.0, timeout=10.0, what="warm-up claims")
        say(f"injecting {scenario.fault.kind} for {scenario.duration:g} s")
        result.inject_began = time.monotonic() - zero
        try:
            scenario.fault.inject(ctx)
            result.fault_start = time.monotonic() - zero
            hold = threading.Event()  # the fault's own duration, not a synchronisation
            hold.wait(scenario.duration / 2)
            result.health_during = _probe_health(service)
            remaining = scenario.duration - (time.monotonic() - zero - result.fault_start)
            hold.wait(max(0.0, remaining))
        finally:
            result.fault_end = time.monotonic() - zero
            if not result.fault_start:
                result.fault_start = result.fault_end
            scenario.fault.remove(ctx)
            result.lifted = time.monotonic() - zero
        say("fault removed; waiting for recovery")
        bound = scenario.recovery_bound + DEADLINE.seconds(limits)
        try:
            first = _await_ok(
                workload,
                1,
                after=result.lifted,
                timeout=bound,
                what="first successful claim after the fault",
            )
            result.recovered_at = first.end
            _await_ok(
                workload,
                wl.concurrency * 2,
                after=first.end,
                timeout=bound,
                what="claims after recovery",
            )
        except WaitTimeout:
            pass
    finally:
        workload.stop(timeout=limits.request_deadline * 3 + 15.0)
        ctx.resources.close()
    result.operations = sorted(workload.operations(), key=lambda op: op.start)
    result.notes.update(ctx.notes)

    say("waiting for the leak baseline")
    result.after, leaks, result.settle_seconds = wait_for_baseline(
        service, admin, result.baseline, timeout=SETTLE_BOUND
    )
    state = read_state(admin, coupons)
    result.checks = [
        *_answer_checks(result),
        *check_history(result.operations, state, max_latency=DEADLINE.seconds(limits)),
        *ctx.checks,
        *(
            [check_timed_out_absent(result.operations, state)]
            if scenario.expect.timed_out_claims_absent
            else []
        ),
        CheckResult(
            "no-leaks",
            not leaks,
            f"settled in {result.settle_seconds:.2f} s; "
            + ("; ".join(map(str, leaks)) if leaks else "every figure at its baseline"),
        ),
        _health_after(service),
    ]
    result.wall_seconds = time.monotonic() - zero
    return result


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """One scenario run of a selection: its result, or the error that stopped it."""

    index: int
    total: int
    repeat: int
    scenario: Scenario
    result: ScenarioResult | None
    error: ChaosError | None = None

    @property
    def label(self) -> str:
        """`[n/total] name`, for progress lines."""
        return f"[{self.index}/{self.total}] {self.scenario.name}"


def run_selection(
    stack: Stack,
    scenarios: Sequence[Scenario],
    *,
    repeat: int = 1,
    keep_going: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Iterator[ScenarioRun]:
    """Run every scenario `repeat` times on one started stack, resetting Toxiproxy after
    each; `chaos run` and bench.failure_timing share this loop. A ChaosError ends the
    selection, or with `keep_going` is yielded as that run's error."""
    say = progress or (lambda _msg: None)
    total = len(scenarios) * repeat
    with (
        stack.toxiproxy() as toxiproxy,
        PostgresAdmin(stack.endpoints.database_url) as admin,
        httpx.Client(base_url=stack.endpoints.service_url, timeout=30.0) as service,
    ):
        limits = Limits.from_metrics(read_metrics(service))
        for i in range(repeat):
            for j, scenario in enumerate(scenarios):
                run = ScenarioRun(i * len(scenarios) + j + 1, total, i, scenario, None)
                say(f"{run.label}: {scenario.fault.kind}")

                def step(message: str, label: str = run.label) -> None:
                    say(f"{label}: {message}")

                try:
                    result = run_scenario(
                        stack,
                        scenario,
                        toxiproxy=toxiproxy,
                        admin=admin,
                        service=service,
                        limits=limits,
                        progress=step,
                    )
                except ChaosError as exc:
                    if not keep_going:
                        raise
                    yield replace(run, error=exc)
                    continue
                finally:
                    toxiproxy.reset()
                yield replace(run, result=result)


def _idle_baseline(service: httpx.Client, admin: PostgresAdmin, limits: Limits) -> Snapshot:
    def idle() -> Snapshot | None:
        snap = snapshot(service, admin)
        ready = (
            snap.pool_size >= limits.pool_min_size
            and snap.pool_available == snap.pool_size
            and snap.in_flight == 0
            and snap.background_cleanups == 0
            and snap.requests_waiting == 0
            and snap.active_backends == 0
            and snap.idle_in_transaction == 0
        )
        return snap if ready else None

    return wait_for(idle, timeout=SETTLE_BOUND, what="idle service with a full pool", interval=0.05)


def _await_ok(
    workload: LiveWorkload, count: int, *, after: float, timeout: float, what: str
) -> Operation:
    def enough() -> Operation | None:
        oks = [op for op in workload.operations() if op.status == 200 and op.start >= after]
        return min(oks, key=lambda op: op.end) if len(oks) >= count else None

    return wait_for(enough, timeout=timeout, what=what)


def _probe_health(service: httpx.Client) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status: int | None = service.get("/health", timeout=30.0).status_code
    except httpx.HTTPError:
        status = None
    return status, time.monotonic() - started


def _health_after(service: httpx.Client) -> CheckResult:
    status, took = _probe_health(service)
    return CheckResult("healthy-after", status == 200, f"/health answered {status} in {took:.3f} s")


def _answer_checks(r: ScenarioResult) -> list[CheckResult]:
    exp = r.scenario.expect
    limits = r.limits
    before = [op for op in r.operations if op.end <= r.inject_began]
    during = r.during()
    affected = during + r.transition()
    # must_see counts every claim the fault touched: under a blackhole the claims caught
    # at injection answer 504 while later ones find the pool held by their cleanups (503).
    seen = {op.status for op in affected if op.status is not None}
    unexpected = Counter(op.label for op in during if op.status not in exp.during)
    missing = sorted(exp.must_see - seen)
    checks = [
        CheckResult(
            "ok-before-fault",
            bool(before) and all(op.status == 200 for op in before),
            f"{len(before)} claims before the fault: {dict(Counter(op.label for op in before))}",
        ),
        CheckResult(
            "answers-during-fault",
            bool(during) and not unexpected and not missing,
            f"{len(during)} claims during the fault: {dict(Counter(op.label for op in during))}, "
            f"{len(affected)} touched by it: {dict(Counter(op.label for op in affected))}; "
            f"allowed {sorted(exp.during)}, must see {sorted(exp.must_see)}; "
            f"unexpected {dict(unexpected) or 'none'}, missing {missing or 'none'}",
        ),
    ]
    for status, bound in sorted(exp.latency.items()):
        limit = bound.seconds(limits)
        ops = [op for op in affected if op.status == status]
        worst = max((op.latency for op in ops), default=0.0)
        checks.append(
            CheckResult(
                f"latency-{status}",
                worst <= limit,
                f"{len(ops)} answers {status}, slowest {worst:.3f} s, "
                f"bound {limit:.2f} s ({bound})",
            )
        )
    no_retry_after = [op.user_id for op in r.operations if op.status == 503 and not op.retry_after]
    checks.append(
        CheckResult(
            "retry-after-on-503",
            not no_retry_after,
            f"{len(no_retry_after)} answers 503 without Retry-After",
        )
    )
    if exp.health is not None:
        health, took = r.health_during or (None, 0.0)
        limit = HEALTH.seconds(limits)
        checks.append(
            CheckResult(
                "health-during-fault",
                health == exp.health and took <= limit,
                f"/health answered {health} in {took:.3f} s; expected {exp.health} within "
                f"{limit:.2f} s",
            )
        )
    ttr = r.time_to_recover
    checks.append(
        CheckResult(
            "recovery",
            ttr is not None and ttr <= r.scenario.recovery_bound,
            f"first successful claim {'never' if ttr is None else f'{ttr:.3f} s'} after the fault "
            f"was removed; bound {r.scenario.recovery_bound:.2f} s",
        )
    )
    if r.recovered_at is not None:
        later = [op for op in r.operations if op.start >= r.recovered_at]
        bad = Counter(op.label for op in later if op.status != 200)
        checks.append(
            CheckResult(
                "ok-after-recovery",
                not bad,
                f"{len(later)} claims after recovery, not 200: {dict(bad) or 'none'}",
            )
        )
    between = r.transition() + [
        op for op in r.operations if r.lifted <= op.start < (r.recovered_at or 1e18)
    ]
    stray = Counter(op.label for op in between if op.status not in exp.during | {200})
    checks.append(
        CheckResult(
            "answers-in-transition",
            not stray,
            f"{len(between)} claims around injection and removal, and before recovery, "
            f"unexpected: {dict(stray) or 'none'}",
        )
    )
    return checks
