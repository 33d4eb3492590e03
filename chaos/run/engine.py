"""The one engine that runs a scenario; pytest and the command line share it.

A run: apply the scenario's stack settings; create the run's keys (the target's); wait
until the service is idle and take the leak baseline; start the role monitor (clustered
stacks) and the workload, and wait for warm-up successes; inject the fault, keep it for
the scenario's duration or until its `until` answers came (probing /health halfway when
expected), remove it, let the stack settle; wait for the first successful request after
the fault's end (time to recover); let a few more finish; stop the workload; wait for the
leak figures to return to the baseline; read the target's state and run every check.
Events (the engine's and the fault's) go to the result on the run clock, with the role
changes, for the journal and the timeline.

Errors from a fault, a probe or a scrape become ChaosError here (their boundary), so a
selection run with `keep_going` goes on; an error while cleaning up never hides the one
that caused the clean-up (it is added to it as a note). Every wait is bounded by the
service's limits (chaos.core.limits.Limits), never by a literal.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from chaos.core.bounds import DEADLINE
from chaos.core.checks import CheckResult, sample
from chaos.core.history import Operation, Outcome
from chaos.core.limits import CANCEL_AND_DRAIN, Limits
from chaos.core.lost_writes import find_lost_writes
from chaos.errors import ChaosError, ScenarioError, WaitTimeout
from chaos.faults.base import OVER, Fault, FaultContext
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import Sessions, Snapshot, read_limits, snapshot, wait_for_baseline
from chaos.infra.roles import RoleMonitor
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.waiting import wait_for
from chaos.infra.workload import LiveWorkload
from chaos.run.result import ScenarioResult
from chaos.run.verdict import answer_checks, primary_after, single_primary
from chaos.scenarios.model import Scenario
from chaos.targets.base import Target

__all__ = ["ScenarioResult", "ScenarioRun", "boundary", "run_scenario", "run_selection"]


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
    target: Target,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Run one scenario against a started stack and return what it saw and checked.

    A scenario with service settings runs on the service restarted with them (its limits
    read again); the service is restarted with the stack's own settings afterwards."""
    if not scenario.service_settings:
        return _run_scenario(stack, scenario, toxiproxy, admin, service, limits, target, progress)
    timeout = service.timeout
    try:
        with boundary("restarting the service with the scenario's settings"):
            stack.configure_service(scenario.service_settings)
            own = read_limits(service)
            service.timeout = httpx.Timeout(own.cleanup_bound)
        return _run_scenario(stack, scenario, toxiproxy, admin, service, own, target, progress)
    finally:
        service.timeout = timeout
        with boundary("restarting the service with the stack's settings"):
            stack.configure_service({})


def _run_scenario(
    stack: Stack,
    scenario: Scenario,
    toxiproxy: ToxiproxyClient,
    admin: PostgresAdmin,
    service: httpx.Client,
    limits: Limits,
    target: Target,
    progress: Callable[[str], None] | None,
) -> ScenarioResult:
    say = progress or (lambda _msg: None)
    run_id = uuid.uuid4().hex[:8]
    zero = time.monotonic()
    exp = scenario.expect
    if (exp.single_primary or exp.primary or exp.replicas_agree) and not stack.role_urls():
        raise ScenarioError(
            f"scenario {scenario.name} expects cluster roles; {type(stack).__name__} has one "
            "database"
        )
    if scenario.router is not None and scenario.router != stack.router:
        raise ScenarioError(
            f"scenario {scenario.name} needs the {scenario.router} router; this stack routes "
            f"by {stack.router}"
        )
    with boundary("preparing the stack"):
        stack.prepare(scenario.stack_settings)
        stack.prepare_router(scenario.router_settings)
    result = ScenarioResult(
        scenario=scenario,
        run_id=run_id,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        limits=limits,
        bound_names=stack.bound_names(),
    )
    wl = scenario.workload
    keys: list[str] = []
    for k in range(wl.keys):
        with boundary(f"creating key {k}"):
            keys.append(target.create_key(service, f"{scenario.name}-{run_id}-{k}"))

    say("waiting for an idle service (baseline)")
    result.baseline = _idle_baseline(service, admin, limits, stack.service_sessions)
    workload = LiveWorkload(
        stack.endpoints.service_url,
        keys,
        target.operate,
        concurrency=wl.concurrency,
        client_timeout=limits.cleanup_bound,
        clock_zero=zero,
        actor_prefix=f"a-{run_id}",
    )
    urls = stack.role_urls()
    roles = RoleMonitor(urls, clock_zero=zero) if urls else None
    result.nodes = sorted(urls)
    ctx = FaultContext(
        stack=stack,
        toxiproxy=toxiproxy,
        admin=admin,
        limits=limits,
        workload=workload,
        keys=list(keys),
        run_id=run_id,
        service=service,
        lock_key=target.lock_key,
        clock_zero=zero,
        roles=roles,
    )
    fault = scenario.fault
    primary_before = stack.primary()
    if roles is not None:
        roles.start()
    try:
        workload.start(timeout=limits.cleanup_bound)
        _drive(scenario, fault, ctx, workload, result, service, say)
    finally:
        if roles is not None:
            roles.stop()
    result.operations = sorted(workload.operations(), key=lambda op: op.start)
    result.notes.update(ctx.notes)
    result.evidence = list(ctx.evidence)
    result.events = dict(sorted(ctx.events.items(), key=lambda kv: kv[1]))
    if roles is not None:
        result.roles = roles.role_changes()

    say("waiting for the leak baseline")
    with boundary("leak probes"):
        result.after, leaks, result.settle_seconds = wait_for_baseline(
            service,
            admin,
            result.baseline,
            timeout=limits.settle_bound,
            sessions=stack.service_sessions,
        )
    with boundary("reading the target's state"):
        state = target.read_state(admin, keys + ctx.extra_keys)
        invariants = target.check(state, result.operations)
    result.lost_writes = find_lost_writes(
        [
            op
            for op in result.operations
            if op.kind in target.write_kinds and op.outcome is Outcome.OK
        ],
        lambda op: target.present(state, op),
        policy=scenario.expect.lost_writes,
        events=result.events,
        primary_at=roles.last_primary_by if roles is not None else lambda _: None,
    )
    result.checks = [
        *answer_checks(result),
        result.lost_writes.check(),
        *invariants,
        *_cluster_checks(result, stack, target, state, primary_before),
        *ctx.checks,
        CheckResult(
            "no-leaks",
            not leaks,
            f"settled in {result.settle_seconds:.2f} s; "
            + ("; ".join(map(str, leaks)) if leaks else "every figure at its baseline"),
        ),
        _health_after(service, limits),
    ]
    if scenario.expect.timed_out_absent:
        result.checks.append(_timed_out_absent(result.operations, target, state))
    result.wall_seconds = time.monotonic() - zero
    return result


def _drive(
    scenario: Scenario,
    fault: Fault,
    ctx: FaultContext,
    workload: LiveWorkload,
    result: ScenarioResult,
    service: httpx.Client,
    say: Callable[[str], None],
) -> None:
    """Warm-up, the fault on and off, recovery; the workload always stopped."""
    limits = ctx.limits
    zero = ctx.clock_zero
    with (
        _then(ctx.resources.close, "releasing the fault's resources"),
        _then(
            lambda: workload.stop(timeout=limits.cleanup_bound + limits.request_deadline),
            "stopping the workload",
        ),
    ):
        wl = scenario.workload
        _await_ok(workload, wl.warmup, after=0.0, timeout=limits.settle_bound, what="warm-up")
        held = f" for {scenario.duration:g} s" if scenario.duration else ""
        if scenario.until:
            held = f" until {dict(scenario.until)} answers, {scenario.duration:g} s at most"
        say(f"injecting {fault.kind}{held}")
        result.inject_began = ctx.mark("inject")

        def remove() -> None:
            now = time.monotonic() - zero
            result.fault_end = ctx.events.get(OVER, now)
            if not result.fault_start:
                result.fault_start = min(result.fault_end, now)
            ctx.mark("remove")
            fault.remove(ctx)
            result.lifted = ctx.mark("lifted")

        with _then(remove, f"removing {fault.kind}"), boundary(f"injecting {fault.kind}"):
            fault.inject(ctx)
            result.fault_start = ctx.in_effect()
            _hold(scenario, ctx, workload, result, service)
        with boundary("letting the stack settle"):
            ctx.stack.settle()
        ctx.mark("settled")
        result.recovery_from = ctx.events.get(OVER, result.lifted)
        say("fault removed; waiting for recovery")
        bound = scenario.recovery_bound.seconds(limits, result.bound_names)
        timeout = bound + DEADLINE.seconds(limits)
        try:
            first = _await_ok(
                workload, 1, after=result.recovery_from, timeout=timeout, what="first success"
            )
            result.recovered_at = first.end
            ctx.mark("recovered", first.end + zero)
            _await_ok(
                workload, wl.concurrency * 2, after=first.end, timeout=timeout, what="successes"
            )
        except WaitTimeout:
            pass  # the recovery check reports it


def _hold(
    scenario: Scenario,
    ctx: FaultContext,
    workload: LiveWorkload,
    result: ScenarioResult,
    service: httpx.Client,
) -> None:
    """Keep the fault on for the scenario's duration (or until its `until` answers came),
    probing /health halfway when the scenario expects an answer from it."""
    hold = threading.Event()  # the fault's own duration, not a synchronisation
    began = time.monotonic()
    if scenario.expect.health is not None:
        hold.wait(scenario.duration / 2)
        result.health_during = _probe_health(service, ctx.limits)
    if scenario.until:

        def reached() -> bool:
            seen = Counter(
                op.status for op in workload.operations() if op.start >= result.fault_start
            )
            return all(seen[status] >= count for status, count in scenario.until.items())

        with suppress(WaitTimeout):  # answers-during-fault's must_see reports a shortfall
            wait_for(
                reached,
                timeout=max(0.0, scenario.duration - (time.monotonic() - began)),
                what=f"answers {dict(scenario.until)}",
                interval=0.05,
            )
        return
    hold.wait(max(0.0, scenario.duration - (time.monotonic() - began)))


def _timed_out_absent(ops: Sequence[Operation], target: Target, state: object) -> CheckResult:
    """Writes answered 504 left nothing: the server cancelled the statement, rolled back."""
    timed_out = [op for op in ops if op.kind in target.write_kinds and op.status == 504]
    left = [op.actor for op in timed_out if target.present(state, op)]
    return CheckResult(
        "timed-out-writes-absent",
        not left,
        f"{len(timed_out)} writes answered 504, {len(left)} of them committed: {sample(left)}",
    )


def _cluster_checks(
    result: ScenarioResult, stack: Stack, target: Target, state: object, before: str | None
) -> list[CheckResult]:
    """The expectations about a cluster's nodes: one primary at a time, which one after
    the run, and every node holding the primary's writes."""
    exp = result.scenario.expect
    checks: list[CheckResult] = []
    if exp.single_primary:
        checks.append(single_primary(result))
    if exp.primary is not None:
        checks.append(primary_after(result, before, stack.primary()))
    if exp.replicas_agree:
        writes = [op for op in result.operations if op.kind in target.write_kinds]
        with boundary("reading every node's state"):
            stack.wait_replayed(timeout=result.limits.settle_bound)
            differ: dict[str, int] = {}
            for node, url in sorted(stack.role_urls().items()):
                with PostgresAdmin(url, application_name=target.application_name) as node_admin:
                    there = target.read_state(node_admin, sorted({op.key for op in writes}))
                differ[node] = sum(
                    target.present(there, op) != target.present(state, op) for op in writes
                )
        unknown = sum(op.outcome is Outcome.INFO for op in writes)
        checks.append(
            CheckResult(
                "replicas-agree",
                not any(differ.values()),
                f"{len(writes)} writes ({unknown} with an unknown outcome); writes on which "
                f"each node differs from the primary: {differ}",
            )
        )
    return checks


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
    target: Target,
    progress: Callable[[str], None] | None = None,
) -> Iterator[ScenarioRun]:
    """Run every scenario `repeat` times on one started stack, healing the stack after
    each (Toxiproxy reset; a cluster's nodes running with default settings); `chaos run`,
    the pytest plugin and bench.failure_timing share this loop. A ChaosError ends the
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
                    with _then(stack.heal, "healing the stack"):
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


def _idle_baseline(
    service: httpx.Client, admin: PostgresAdmin, limits: Limits, sessions: Sessions | None
) -> Snapshot:
    def idle() -> Snapshot | None:
        try:
            snap = snapshot(service, admin, sessions)
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
