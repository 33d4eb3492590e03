"""One schedule tried: run it through the one engine, judge it without an expectation of
its own, and shrink it when it fails.

A schedule fails when any judged check fails (`judged`: all but the answers while a fault
is on and the faults' own checks): the target's invariants and lost writes, every answer
within its bound (no-hang), Retry-After on every 503, recovery within its bound after the
last fault, no leak after settling, the warm-up and the traffic after recovery all 200,
and evidence that each fault acted. Timing is real, so a candidate of the shrink runs up
to `repeats` times and counts as failing when any run fails on one of the checks the
original failed on; shrinking stops when no one-move smaller schedule fails.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chaos.errors import ChaosError
from chaos.explore.space import KINDS, Kind, Schedule, draw, judged, smaller
from chaos.faults.base import FaultFactory
from chaos.faults.registry import fault_kinds
from chaos.infra.stack import Stack
from chaos.run.engine import run_selection
from chaos.run.result import ScenarioResult
from chaos.scenarios.loader import parse_scenarios
from chaos.scenarios.model import Scenario
from chaos.targets.base import Target

__all__ = [
    "RESTART_AFTER",
    "UNOBSERVED",
    "Attempt",
    "Plan",
    "Trial",
    "attempt",
    "failing_checks",
    "run_once",
    "schedule_for",
]

#: The check whose failure alone makes a schedule inconclusive (Trial.unobserved).
UNOBSERVED = "fault-observed"
#: Checks whose failure leaves the service unfit for the next run: it is restarted.
RESTART_AFTER = frozenset({"no-leaks", "healthy-after"})


def failing_checks(result: ScenarioResult) -> frozenset[str]:
    """The checks that judge an exploration and failed."""
    return frozenset(c.name for c in result.failed_checks() if judged(c.name))


def schedule_for(seed: int, index: int, kinds: tuple[Kind, ...] = KINDS) -> Schedule:
    """The schedule number `index` of exploration `seed`: the same every time, given the
    same `kinds` (an exploration draws from `runner.default_kinds(target, stack)`, which
    adds the target's declared kinds to the built-in KINDS)."""
    return draw(random.Random(f"{seed}:{index}"), kinds)


@dataclass
class Trial:
    """One run of one schedule."""

    schedule: Schedule
    failed: frozenset[str]
    error: str | None = None
    result: ScenarioResult | None = None
    index: int = 0
    details: dict[str, str] = field(default_factory=dict)
    """What each failed check said (kept when the result is not)."""

    @property
    def unobserved(self) -> bool:
        """Only fault-observed failed: one of the schedule's faults showed no effect,
        which says it was drawn too mild to judge the service by, not that the service
        is wrong (a shrink would only make it milder)."""
        return self.failed == {UNOBSERVED} and self.error is None

    @property
    def fails(self) -> bool:
        return (bool(self.failed) and not self.unobserved) or self.error is not None


def _scenario(schedule: Schedule, name: str, target: Target, stack_kind: str) -> Scenario:
    data = {"scenarios": [schedule.scenario(name, schedule.describe(), stack_kind)]}
    scenarios, problems = parse_scenarios(yaml.safe_dump(data), source=name, kinds=_kinds(target))
    if problems or len(scenarios) != 1:
        raise ChaosError(f"a drawn schedule is not a valid scenario: {list(map(str, problems))}")
    return scenarios[0]


def _kinds(target: Target) -> dict[str, FaultFactory]:
    return fault_kinds(target.fault_kinds())


def run_once(
    stack: Stack, schedule: Schedule, name: str, target: Target, stack_kind: str = "any"
) -> Trial:
    """Run a schedule once through the engine; an error is a failing trial too.

    A run that errors (the service never idle before it, say: a request an earlier
    schedule abandoned still at work) is run again once on a restarted service, so that
    what an earlier schedule left behind is not this one's finding."""
    scenario = _scenario(schedule, name, target, stack_kind)
    for attempt_ in (1, 2):
        (run,) = run_selection(stack, [scenario], keep_going=True, target=target)
        if run.result is None:
            trial = Trial(schedule, frozenset(), error=str(run.error))
        else:
            failed = failing_checks(run.result)
            details = {c.name: c.detail for c in run.result.failed_checks() if c.name in failed}
            trial = Trial(schedule, failed, result=run.result, details=details)
        restarted = False
        if trial.error is not None or RESTART_AFTER & trial.failed:
            # Left off its baseline (a leak), the service would fail every later run
            # before its fault: the next one starts on a new service process. A stack the
            # toolkit did not start cannot: the next run says what it finds.
            with contextlib.suppress(ChaosError):
                stack.restart_service()
                restarted = True
        if trial.error is None or not restarted or attempt_ == 2:
            return trial
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Plan:
    """What every worker of an exploration needs: the seed, what to draw from, how to
    shrink, where shrunk files go (picklable: it travels to worker processes)."""

    seed: int
    kinds: tuple[Kind, ...]
    stack_kind: str
    repeats: int
    out_dir: Path


@dataclass
class Attempt:
    """One schedule tried: its trial, and when it failed, the shrink's findings."""

    index: int
    trial: Trial
    failed_at: float | None = None
    """time.monotonic() when it failed (before shrinking; one clock for all processes)."""
    found: dict[str, object] | None = None
    timeline: bytes | None = None
    """The PNG timeline of the shrunk schedule's last failing run."""


def attempt(
    stack: Stack,
    target: Target,
    plan: Plan,
    index: int,
    progress: Callable[[str], None],
) -> Attempt:
    """Run schedule `index` of the plan's seed; shrink it when it fails."""
    from chaos.report.writers import timeline_png

    schedule = schedule_for(plan.seed, index, plan.kinds)
    name = f"explore-{plan.seed}-{index}"
    progress(f"{name}: {schedule.describe()}")
    trial = run_once(stack, schedule, name, target, plan.stack_kind)
    trial.index = index
    result, trial.result = trial.result, None  # thousands of operations: not kept
    if not trial.fails:
        if trial.unobserved:
            seen = trial.details.get(UNOBSERVED, "a fault showed no effect")
            progress(f"{name}: unobserved ({seen}); not judged")
        else:
            progress(f"{name}: passed")
        return Attempt(index, trial)
    failed_at = time.monotonic()
    progress(f"{name}: FAIL {sorted(trial.failed) or trial.error}; shrinking")
    found, last = _shrink(stack, target, trial, result, name, plan, progress)
    picture = timeline_png(last) if last is not None else None
    return Attempt(index, trial, failed_at, found, picture)


def _shrink(
    stack: Stack,
    target: Target,
    original: Trial,
    result: ScenarioResult | None,
    name: str,
    plan: Plan,
    progress: Callable[[str], None],
) -> tuple[dict[str, object], ScenarioResult | None]:
    wanted = original.failed or frozenset({"error"})
    current = original.schedule
    last = result
    steps: list[dict[str, object]] = []
    runs = 0

    def fails(candidate: Schedule) -> frozenset[str]:
        nonlocal runs, last
        for _ in range(plan.repeats):
            runs += 1
            trial = run_once(stack, candidate, f"{name}-shrink", target, plan.stack_kind)
            failed = trial.failed or (frozenset({"error"}) if trial.error else frozenset())
            if trial.unobserved:
                failed = frozenset()  # too mild to tell: not the original's failure
            if failed & wanted:
                last = trial.result
                return failed & wanted
        return frozenset()

    moved = True
    while moved:
        moved = False
        for candidate in smaller(current, plan.kinds):
            if candidate.size >= current.size:
                continue
            failed = fails(candidate)
            if failed:
                steps.append({"schedule": candidate.describe(), "failed": sorted(failed)})
                progress(f"{name}: still fails {sorted(failed)} as {candidate.describe()}")
                current, moved = candidate, True
                break
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    path = plan.out_dir / f"{name.removeprefix('explore-')}.yaml"
    description = (
        f"Shrunk by pgchaos explore from {original.schedule.describe()}; it failed "
        f"{', '.join(sorted(wanted))}."
    )
    doc = {"scenarios": [current.scenario(name, description, plan.stack_kind)]}
    path.write_text(
        "# Written by `pgchaos explore`; rerun with `pgchaos run --scenarios "
        f"{path}`.\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    progress(f"{name}: shrunk to {current.describe()} in {runs} runs; wrote {path}")
    return {
        "name": name,
        "failed": sorted(wanted),
        "original": original.schedule.describe(),
        "shrunk": current.describe(),
        "faults": len(current.steps),
        "shrink_steps": steps,
        "runs": runs,
        "file": str(path),
    }, last
