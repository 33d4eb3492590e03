"""Exploration: draw schedules, run each through the one engine, judge them without an
expectation per schedule, shrink a failing one, and write it as a scenario file.

A schedule fails when any judged check fails (`judged`: all but the answers while a fault
is on and the faults' own checks): the target's invariants and lost writes, every answer within its
bound (no-hang), Retry-After on every 503, recovery within its bound after the last
fault, no leak after settling, the warm-up and the traffic after recovery all 200, and
evidence that the faults acted. Timing is real, so a candidate of the shrink runs up to
`repeats` times and counts as failing when any run fails on one of the checks the
original failed on; shrinking stops when no one-move smaller schedule fails.
"""

from __future__ import annotations

import base64
import html
import random
import time
from collections import Counter
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

#: The check whose failure alone makes a schedule inconclusive (Trial.unobserved).
UNOBSERVED = "fault-observed"

__all__ = [
    "Exploration",
    "Trial",
    "explore",
    "failing_checks",
    "run_once",
    "schedule_for",
    "summary",
    "write_summary",
]


def failing_checks(result: ScenarioResult) -> frozenset[str]:
    """The checks that judge an exploration and failed."""
    return frozenset(c.name for c in result.failed_checks() if judged(c.name))


def schedule_for(seed: int, index: int, kinds: tuple[Kind, ...] = KINDS) -> Schedule:
    """The schedule number `index` of exploration `seed`: the same every time."""
    return draw(random.Random(f"{seed}:{index}"), kinds)


@dataclass
class Trial:
    """One run of one schedule."""

    schedule: Schedule
    failed: frozenset[str]
    error: str | None = None
    result: ScenarioResult | None = None

    @property
    def unobserved(self) -> bool:
        """Only fault-observed failed: the schedule's faults showed no effect at all,
        which says the drawn faults were too mild to judge the service by, not that
        the service is wrong (a shrink would only make them milder)."""
        return self.failed == {UNOBSERVED} and self.error is None

    @property
    def fails(self) -> bool:
        return (bool(self.failed) and not self.unobserved) or self.error is not None


@dataclass
class Exploration:
    """What an exploration ran and found."""

    seed: int
    trials: list[Trial] = field(default_factory=list)
    found: list[dict[str, object]] = field(default_factory=list)
    """Per failing schedule: original, shrunk, the shrink's steps, the file written."""
    shrunk_runs: dict[str, ScenarioResult] = field(default_factory=dict)
    """Per failing schedule, by name: the last failing run of its shrunk schedule."""
    wall_seconds: float = 0.0

    def coverage(self) -> dict[str, object]:
        """Which kinds, how many overlaps, what ranges of duration the runs covered."""
        kinds = Counter(s.kind for t in self.trials for s in t.schedule.steps)
        durations = [s.duration for t in self.trials for s in t.schedule.steps]
        ranges: dict[str, dict[str, list[float]]] = {}
        for t in self.trials:
            for step in t.schedule.steps:
                decl = step.fault
                values = decl.get("attributes", decl)
                assert isinstance(values, dict)
                for key, value in values.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        low, high = ranges.setdefault(step.kind, {}).setdefault(
                            key, [float(value), float(value)]
                        )
                        ranges[step.kind][key] = [min(low, value), max(high, value)]
        return {
            "schedules": len(self.trials),
            "kinds": dict(sorted(kinds.items())),
            "attribute_ranges": dict(sorted(ranges.items())),
            "kinds_not_drawn": sorted({k.name for k in KINDS} - set(kinds)),
            "overlapping_pairs": sum(t.schedule.overlaps for t in self.trials),
            "step_seconds": [min(durations, default=0.0), max(durations, default=0.0)],
            "unobserved": [t.schedule.describe() for t in self.trials if t.unobserved],
            "faults_per_schedule": dict(
                sorted(Counter(len(t.schedule.steps) for t in self.trials).items())
            ),
        }


def _scenario(schedule: Schedule, name: str, target: Target) -> Scenario:
    data = {"scenarios": [schedule.scenario(name, schedule.describe())]}
    scenarios, problems = parse_scenarios(yaml.safe_dump(data), source=name, kinds=_kinds(target))
    if problems or len(scenarios) != 1:
        raise ChaosError(f"a drawn schedule is not a valid scenario: {list(map(str, problems))}")
    return scenarios[0]


def _kinds(target: Target) -> dict[str, FaultFactory]:
    return fault_kinds(target.fault_kinds())


def run_once(stack: Stack, schedule: Schedule, name: str, target: Target) -> Trial:
    """Run a schedule once through the engine; an error is a failing trial too."""
    scenario = _scenario(schedule, name, target)
    (run,) = run_selection(stack, [scenario], keep_going=True, target=target)
    if run.result is None:
        return Trial(schedule, frozenset(), error=str(run.error))
    return Trial(schedule, failing_checks(run.result), result=run.result)


def explore(
    stack: Stack,
    target: Target,
    *,
    seed: int,
    schedules: int | None = None,
    budget: float | None = None,
    repeats: int = 2,
    out_dir: Path = Path("explore"),
    progress: Callable[[str], None] = lambda _: None,
    first_only: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> Exploration:
    """Draw and run schedules until `schedules` ran or `budget` seconds passed (or, with
    `first_only`, one failed); shrink every failing one and write it to
    `out_dir/<seed>-<n>.yaml`. `shard` (i, n) runs the schedules whose index is i modulo
    n, so n machines of a CI matrix split one seed's schedules between them."""
    part, parts = shard
    if not 0 <= part < parts:
        raise ChaosError(f"shard {part}/{parts}: expected 0 <= i < n")
    if schedules is None and budget is None:
        raise ChaosError("explore needs --schedules or --budget")
    found = Exploration(seed)
    started = time.monotonic()
    ran = 0
    while (schedules is None or ran < schedules) and (
        budget is None or time.monotonic() - started < budget
    ):
        index = part + ran * parts
        ran += 1
        schedule = schedule_for(seed, index)
        name = f"explore-{seed}-{index}"
        progress(f"{name}: {schedule.describe()}")
        trial = run_once(stack, schedule, name, target)
        found.trials.append(trial)
        if trial.fails:
            progress(f"{name}: FAIL {sorted(trial.failed) or trial.error}; shrinking")
            first = time.monotonic() - started
            shrunk, last = _shrink(stack, target, trial, name, repeats, out_dir, progress)
            found.found.append({**shrunk, "seconds_to_failure": round(first, 1)})
            if last is not None:
                found.shrunk_runs[name] = last
            if first_only:
                break
        elif trial.unobserved:
            progress(f"{name}: unobserved (its faults showed no effect); not judged")
        else:
            progress(f"{name}: passed")
    found.wall_seconds = time.monotonic() - started
    return found


def _shrink(
    stack: Stack,
    target: Target,
    original: Trial,
    name: str,
    repeats: int,
    out_dir: Path,
    progress: Callable[[str], None],
) -> tuple[dict[str, object], ScenarioResult | None]:
    wanted = original.failed or frozenset({"error"})
    current = original.schedule
    last = original.result
    steps: list[dict[str, object]] = []
    runs = 0

    def fails(candidate: Schedule) -> frozenset[str]:
        nonlocal runs, last
        for _ in range(repeats):
            runs += 1
            trial = run_once(stack, candidate, f"{name}-shrink", target)
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
        for candidate in smaller(current):
            if candidate.size >= current.size:
                continue
            failed = fails(candidate)
            if failed:
                steps.append({"schedule": candidate.describe(), "failed": sorted(failed)})
                progress(f"{name}: still fails {sorted(failed)} as {candidate.describe()}")
                current, moved = candidate, True
                break
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name.removeprefix('explore-')}.yaml"
    description = (
        f"Shrunk by pgchaos explore from {original.schedule.describe()}; it failed "
        f"{', '.join(sorted(wanted))}."
    )
    doc = {"scenarios": [current.scenario(name, description)]}
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


def summary(found: Exploration) -> list[str]:
    """What to print at the end."""
    lines = [
        f"seed {found.seed}: {len(found.trials)} schedules in {found.wall_seconds:.0f} s, "
        f"{sum(t.fails for t in found.trials)} failed",
    ]
    for f in found.found:
        lines.append(
            f"  {f['name']}: {f['failed']} -> {f['faults']} fault(s): {f['shrunk']} ({f['file']})"
        )
    cov = found.coverage()
    lines.append(f"  coverage: {cov}")
    return lines


def write_summary(found: Exploration, path: Path) -> None:
    """explore.json (the trials, what was found and shrunk, the coverage) and, beside it,
    explore.html: per failing schedule the original and the shrunk one side by side, the
    shrink's steps and the timeline of the shrunk run."""
    import json

    from chaos.report.writers import timeline_png

    path.parent.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    sections = []
    for f in found.found:
        name = str(f["name"])
        steps = "".join(
            f"<li>{esc(str(s['schedule']))}: still fails {esc(str(s['failed']))}</li>"
            for s in f["shrink_steps"]  # type: ignore[attr-defined]
        )
        run = found.shrunk_runs.get(name)
        picture = (
            f"<img alt='timeline of the shrunk {esc(name)}' src='data:image/png;base64,"
            f"{base64.b64encode(timeline_png(run)).decode()}'>"
            if run is not None
            else ""
        )
        sections.append(
            f"<section><h2>{esc(name)}: {esc(str(f['failed']))}</h2><table><tr><th>original"
            f"</th><th>shrunk ({f['faults']} fault(s), {f['runs']} runs)</th></tr><tr><td>"
            f"{esc(str(f['original']))}</td><td>{esc(str(f['shrunk']))}</td></tr></table>"
            f"<p>scenario file: {esc(str(f['file']))}</p><ol>{steps}</ol>{picture}</section>"
        )
    cov = esc(json.dumps(found.coverage(), indent=1))
    path.with_suffix(".html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Exploration</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}td,th{border:1px solid"
        " #ccc;padding:4px;vertical-align:top}table{border-collapse:collapse}img{max-width:100%}"
        f"</style></head><body><h1>Exploration, seed {found.seed}</h1><p>{len(found.trials)} "
        f"schedules in {found.wall_seconds:.0f} s, {len(found.found)} failed.</p>"
        f"{''.join(sections)}<h2>Coverage</h2><pre>{cov}</pre></body></html>"
    )
    path.write_text(
        json.dumps(
            {
                "seed": found.seed,
                "wall_seconds": round(found.wall_seconds, 1),
                "coverage": found.coverage(),
                "trials": [
                    {
                        "schedule": t.schedule.describe(),
                        "failed": sorted(t.failed),
                        "error": t.error,
                    }
                    for t in found.trials
                ],
                "found": found.found,
            },
            indent=1,
        )
    )
