"""Exploration: draw schedules, run each through the one engine (chaos.explore.trial),
on one stack or on a pool of worker processes (chaos.explore.pool), shrink the failing
ones to scenario files, and say what the run covered.
"""

from __future__ import annotations

import base64
import html
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos.errors import ChaosError
from chaos.explore.pool import run_pool
from chaos.explore.space import KINDS, Kind, kinds_for
from chaos.explore.trial import (
    UNOBSERVED,
    Attempt,
    Plan,
    Trial,
    attempt,
    failing_checks,
    run_once,
    schedule_for,
)
from chaos.faults.registry import fault_kinds
from chaos.infra.stack import Stack
from chaos.targets.base import Target

__all__ = [
    "UNOBSERVED",
    "Exploration",
    "Trial",
    "default_kinds",
    "explore",
    "failing_checks",
    "run_once",
    "schedule_for",
    "summary",
    "write_summary",
]


@dataclass
class Exploration:
    """What an exploration ran and found."""

    seed: int
    trials: list[Trial] = field(default_factory=list)
    found: list[dict[str, object]] = field(default_factory=list)
    """Per failing schedule: original, shrunk, the shrink's steps, the file written."""
    timelines: dict[str, bytes] = field(default_factory=dict)
    """Per failing schedule, by name: the PNG timeline of its shrunk schedule's last
    failing run."""
    wall_seconds: float = 0.0
    kinds: tuple[Kind, ...] = KINDS
    workers: int = 1

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
            "kinds_not_drawn": sorted({k.name for k in self.kinds} - set(kinds)),
            "workers": self.workers,
            "overlapping_pairs": sum(t.schedule.overlaps for t in self.trials),
            "step_seconds": [min(durations, default=0.0), max(durations, default=0.0)],
            "unobserved": [t.schedule.describe() for t in self.trials if t.unobserved],
            "faults_per_schedule": dict(
                sorted(Counter(len(t.schedule.steps) for t in self.trials).items())
            ),
        }


def default_kinds(target: Target, stack_kind: str = "any") -> tuple[Kind, ...]:
    """What an exploration draws from by default: the stack's built-in kinds, and the
    target's and the entry points' kinds that declare their ranges (`kinds_for`)."""
    stack_name = "ha" if stack_kind == "ha" else "local"
    return kinds_for(stack_name, fault_kinds(target.fault_kinds()))


def explore(
    stack: Stack | None,
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
    kinds: tuple[Kind, ...] | None = None,
    stack_kind: str = "any",
    workers: int = 1,
    new_stack: Callable[[], Stack] | None = None,
) -> Exploration:
    """Draw and run schedules until `schedules` ran or `budget` seconds passed (or, with
    `first_only`, one failed); shrink every failing one and write it to
    `out_dir/<seed>-<n>.yaml`. `shard` (i, n) runs the schedules whose index is i modulo
    n, so n machines of a CI matrix split one seed's schedules between them.

    `kinds`: what schedules are drawn from, by default `kinds_for` the stack (`stack_kind`
    `ha`: the HA stack, which the drawn scenarios then need) and the target's and the
    entry points' kinds that declare their ranges. With `workers` > 1, `stack` is not used:
    that many processes each start a stack of their own with `new_stack` (free ports)
    and take the next schedule when they finish one (chaos.explore.pool)."""
    part, parts = shard
    if not 0 <= part < parts:
        raise ChaosError(f"shard {part}/{parts}: expected 0 <= i < n")
    if schedules is None and budget is None:
        raise ChaosError("explore needs --schedules or --budget")
    if workers < 1:
        raise ChaosError(f"workers: expected at least 1, got {workers}")
    if kinds is None:
        kinds = default_kinds(target, stack_kind)
    plan = Plan(seed, kinds, stack_kind, repeats, out_dir)
    found = Exploration(seed, kinds=kinds, workers=workers)
    started = time.monotonic()
    sent = 0

    def more() -> int | None:
        """The next schedule's index, or None when the run is over."""
        nonlocal sent
        over_budget = budget is not None and time.monotonic() - started >= budget
        if (schedules is not None and sent >= schedules) or over_budget:
            return None
        if first_only and found.found:
            return None
        sent += 1
        return part + (sent - 1) * parts

    def record(done: Attempt) -> None:
        found.trials.append(done.trial)
        if done.found is not None:
            assert done.failed_at is not None
            name = str(done.found["name"])
            found.found.append(
                {**done.found, "seconds_to_failure": round(done.failed_at - started, 1)}
            )
            if done.timeline is not None:
                found.timelines[name] = done.timeline

    if workers == 1:
        if stack is None:
            raise ChaosError("explore with one worker needs a started stack")
        while (index := more()) is not None:
            record(attempt(stack, target, plan, index, progress))
    else:
        if new_stack is None:
            raise ChaosError("explore with several workers needs new_stack (a stack per worker)")
        run_pool(workers, new_stack, target, plan, more, record, progress)
    found.trials.sort(key=lambda t: t.index)
    found.wall_seconds = time.monotonic() - started
    return found


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

    path.parent.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    sections = []
    for f in found.found:
        name = str(f["name"])
        steps = "".join(
            f"<li>{esc(str(s['schedule']))}: still fails {esc(str(s['failed']))}</li>"
            for s in f["shrink_steps"]  # type: ignore[attr-defined]
        )
        png = found.timelines.get(name)
        picture = (
            f"<img alt='timeline of the shrunk {esc(name)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'>"
            if png is not None
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
                        "details": t.details,
                        "error": t.error,
                    }
                    for t in found.trials
                ],
                "found": found.found,
            },
            indent=1,
        )
    )
