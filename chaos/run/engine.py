"""The one engine that runs a scenario; pytest and the command line share it.

A run: create the run's keys (coupons); wait until the service is idle and take the leak
baseline; start the workload and wait for warm-up successes; inject the fault, keep it
for the scenario's duration (probing /health halfway), remove it; wait for the first
successful request (time to recover); let a few more finish; stop the workload; wait for
the leak figures to return to the baseline; run every check.

Errors from a fault, a probe or a scrape become ChaosError here (their boundary), so a
selection run with `keep_going` goes on; an error while cleaning up never hides the one
that caused the clean-up (it is added to it as a note). Every wait is bounded by the
service's limits (chaos.checks.probes.Limits), never by a literal.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from chaos.checks.answers import answer_checks
from chaos.checks.base import CheckResult
from chaos.checks.probes import (
    CANCEL_AND_DRAIN,
    Limits,
    Snapshot,
    read_metrics,
    snapshot,
    wait_for_baseline,
)
from chaos.errors import ChaosError, WaitTimeout
from chaos.faults.base import FaultContext
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for
from chaos.run.history import Operation
from chaos.run.result import ScenarioResult
from chaos.run.workload import LiveWorkload
from chaos.scenarios.model import DEADLINE, Scenario
from chaos.targets.base import Target
from chaos.targets.coupons import COUPONS

__all__ = [
    "ScenarioResult",
    "ScenarioRun",
    "boundary",
    "read_limits",
    "run_scenario",
    "run_selection",
]


@contextmanager
def boundary(what: str) -> Iterator[None]:
    """Any error of the block becomes a ChaosError naming `what` (ours pass unchanged)."""
    try:
        yield
    except ChaosError:
        raise
    except Exception as exc:
        raise ChaosError(f"{what}: {type(exc).__name__}: {exc}") from exc


@contextmanager
def _then(cleanup: Callable[[], object], what: str) -> Iterator[None]:
    """Run `cleanup` after the block. When the block failed, a cleanup error is added to
    the block's error as a note instead of replacing it."""
    try:
        yield
    except BaseException as exc:
        try:
            cleanup()
        except Exception as cleanup_exc:
            exc.add_note(f"then {what} failed too: {type(cleanup_exc).__name__}: {cleanup_exc}")
        raise
    with boundary(what):
        cleanup()


def run_scenario(
    stack: Stack,
    scenario: Scenario,
    *,
    toxiproxy: ToxiproxyClient,
    admin: PostgresAdmin,
    service: httpx.Client,
    limits: Limits,
    target: Target = COUPONS,
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
    keys: list[str] = []

    def create_key(suffix: str, amount: int) -> str:
        with boundary(f"creating key {suffix}"):
            keys.append(target.create_key(service, f"{scenario.name}-{run_id}-{suffix}", amount))
        return keys[-1]

    for k in range(wl.keys):
        create_key(str(k), wl.stock)
    workload_keys = list(keys)

    say("waiting for an idle service (baseline)")
    result.baseline = _idle_baseline(service, admin, limits)
    workload = LiveWorkload(
        stack.endpoints.service_url,
        workload_keys,
        target.operate,
        concurrency=wl.concurrency,
        client_timeout=limits.cleanup_bound,
        clock_zero=zero,
        user_prefix=f"u-{run_id}",
    )
    ctx = FaultContext(
        stack=stack,
        toxiproxy=toxiproxy,
        admin=admin,
        limits=limits,
        target=target,
        workload=workload,
        keys=workload_keys,
        run_id=run_id,
        service=service,
        create_key=create_key,
    )
    fault = scenario.fault
    workload.start(timeout=limits.cleanup_bound)
    with (
        _then(ctx.resources.close, "releasing the fault's resources"),
        _then(
            lambda: workload.stop(timeout=limits.cleanup_bound + limits.request_deadline),
            "stopping the workload",
        ),
    ):
        _await_ok(workload, wl.warmup, after=0.0, timeout=limits.settle_bound, what="warm-up")
        say(f"injecting {fault.kind} for {scenario.duration:g} s")
        result.inject_began = time.monotonic() - zero

        def remove() -> None:
            result.fault_end = time.monotonic() - zero
            if not result.fault_start:
                result.fault_start = result.fault_end
            fault.remove(ctx)
            result.lifted = time.monotonic() - zero

        with _then(remove, f"removing {fault.kind}"), boundary(f"injecting {fault.kind}"):
            fault.inject(ctx)
            result.fault_start = time.monotonic() - zero
            hold = threading.Event()  # the fault's own duration, not a synchronisation
            hold.wait(scenario.duration / 2)
            result.health_during = _probe_health(service, limits)
            remaining = scenario.duration - (time.monotonic() - zero - result.fault_start)
            hold.wait(max(0.0, remaining))
        say("fault removed; waiting for recovery")
        bound = scenario.recovery_bound + DEADLINE.seconds(limits)
        try:
            first = _await_ok(
                workload, 1, after=result.lifted, timeout=bound, what="first success after it"
            )
            result.recovered_at = first.end
            _await_ok(
                workload, wl.concurrency * 2, after=first.end, timeout=bound, what="successes"
            )
        except WaitTimeout:
            pass  # the recovery check reports it
    result.operations = sorted(workload.operations(), key=lambda op: op.start)
    result.notes.update(ctx.notes)
    result.evidence = list(ctx.evidence)

    say("waiting for the leak baseline")
    with boundary("leak probes"):
        result.after, leaks, result.settle_seconds = wait_for_baseline(
            service, admin, result.baseline, timeout=limits.settle_bound
        )
    with boundary("reading the target's state"):
        invariants = target.check(
            admin,
            result.operations,
            keys,
            timed_out_absent=scenario.expect.timed_out_claims_absent,
        )
    result.checks = [
        *answer_checks(result),
        *invariants,
        *ctx.checks,
        CheckResult(
            "no-leaks",
            not leaks,
            f"settled in {result.settle_seconds:.2f} s; "
            + ("; ".join(map(str, leaks)) if leaks else "every figure at its baseline"),
        ),
        _health_after(service, limits),
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


def read_limits(service: httpx.Client) -> Limits:
    """The limits the running service reports."""
    return Limits.from_metrics(read_metrics(service))


def run_selection(
    stack: Stack,
    scenarios: Sequence[Scenario],
    *,
    repeat: int = 1,
    keep_going: bool = False,
    target: Target = COUPONS,
    progress: Callable[[str], None] | None = None,
) -> Iterator[ScenarioRun]:
    """Run every scenario `repeat` times on one started stack, resetting Toxiproxy after
    each; `chaos run` and bench.failure_timing share this loop. A ChaosError ends the
    selection, or with `keep_going` is yielded as that run's error."""
    say = progress or (lambda _msg: None)
    total = len(scenarios) * repeat
    with (
        stack.toxiproxy() as toxiproxy,
        PostgresAdmin(
            stack.endpoints.database_url, application_name=target.application_name
        ) as admin,
        # The first request reads the limits; CANCEL_AND_DRAIN bounds it, then the limits do.
        httpx.Client(base_url=stack.endpoints.service_url, timeout=CANCEL_AND_DRAIN) as service,
    ):
        limits = read_limits(service)
        service.timeout = httpx.Timeout(limits.cleanup_bound)
        for i in range(repeat):
            for j, scenario in enumerate(scenarios):
                run = ScenarioRun(i * len(scenarios) + j + 1, total, i, scenario, None)
                say(f"{run.label}: {scenario.fault.kind}")

                def step(message: str, label: str = run.label) -> None:
                    say(f"{label}: {message}")

                try:
                    with _then(toxiproxy.reset, "resetting Toxiproxy"):
                        result = run_scenario(
                            stack,
                            scenario,
                            toxiproxy=toxiproxy,
                            admin=admin,
                            service=service,
                            limits=limits,
                            target=target,
                            progress=step,
                        )
                except ChaosError as exc:
                    if not keep_going:
                        raise
                    yield replace(run, error=exc)
                    continue
                yield replace(run, result=result)


def _idle_baseline(service: httpx.Client, admin: PostgresAdmin, limits: Limits) -> Snapshot:
    def idle() -> Snapshot | None:
        try:
            snap = snapshot(service, admin)
        except ChaosError:
            return None  # a scrape that failed once (a busy service) is not the end
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

    return wait_for(
        idle, timeout=limits.settle_bound, what="idle service with a full pool", interval=0.05
    )


def _await_ok(
    workload: LiveWorkload, count: int, *, after: float, timeout: float, what: str
) -> Operation:
    def enough() -> Operation | None:
        oks = [op for op in workload.operations() if op.status == 200 and op.start >= after]
        return min(oks, key=lambda op: op.end) if len(oks) >= count else None

    return wait_for(enough, timeout=timeout, what=what)


def _probe_health(service: httpx.Client, limits: Limits) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status: int | None = service.get("/health", timeout=limits.cleanup_bound).status_code
    except httpx.HTTPError:
        status = None
    return status, time.monotonic() - started


def _health_after(service: httpx.Client, limits: Limits) -> CheckResult:
    status, took = _probe_health(service, limits)
    return CheckResult("healthy-after", status == 200, f"/health answered {status} in {took:.3f} s")
