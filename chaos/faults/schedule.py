"""A schedule of faults on one clock: each step injected `at` seconds after the schedule
began and removed `for` seconds later; steps may overlap. `chaos explore` draws these,
and a shrunk schedule is written back as a scenario file with this fault kind::

    fault:
      kind: schedule
      steps:
        - {at: 0.0, for: 1.5, fault: {kind: proxy-down}}
        - {at: 1.0, for: 2.0, fault: {kind: toxic, type: latency, attributes: {latency: 800}}}

The schedule runs inside `inject`, in the engine's thread (faults share its admin
connection), waiting between steps for the schedule's own times; the first step on marks
`in-effect`, the last step off marks `over`, so recovery is measured from the end of the
last fault. A step still on when something fails is removed by `remove`.

So that each step can be shown to have acted (`fault-observed` judges every step of a
schedule), the schedule keeps per step, in `notes["steps"]`: its kind, when it was on and
off, what it reported doing itself, and the service's pool counters read when it went on
and at the next moment after it went off (None for the step that ends the schedule: the
engine's reading after the run stands in for it).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

from chaos.faults.base import Fault, FaultContext
from chaos.infra.probes import pool_counters

__all__ = ["Step", "Timeline"]


@dataclass(frozen=True)
class Step:
    """One fault of a schedule: on at `at` seconds, off `duration` seconds later."""

    at: float
    duration: float
    fault: Fault

    def __post_init__(self) -> None:
        for name in ("at", "duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name}: expected seconds >= 0, got {value!r}")
        if self.duration == 0:
            # Its removal would come before its injection at the same instant.
            raise ValueError("duration: expected seconds > 0 (a step is on for some time)")

    @property
    def end(self) -> float:
        """When the step is removed, on the schedule's clock."""
        return self.at + self.duration


@dataclass(frozen=True)
class Timeline(Fault):
    """Faults on one clock (see the module docstring)."""

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("steps: expected at least one step")

    @property
    def kind(self) -> str:
        return (
            "schedule("
            + "; ".join(f"{s.fault.kind} at {s.at:g} s for {s.duration:g} s" for s in self.steps)
            + ")"
        )

    @property
    def length(self) -> float:
        """Seconds from the first step on to the last step off."""
        return max(s.end for s in self.steps)

    def inject(self, ctx: FaultContext) -> None:
        moments = sorted(
            [(s.at, 1, i) for i, s in enumerate(self.steps)]
            + [(s.end, 0, i) for i, s in enumerate(self.steps)]
        )  # at one instant, removals (0) before injections (1)
        own = [replace(ctx, resources=ExitStack(), evidence=[]) for _ in self.steps]
        on: set[int] = set()
        record: list[dict[str, object]] = [
            {"kind": s.fault.kind, "evidence": own[i].evidence, "hidden": s.fault.hidden}
            for i, s in enumerate(self.steps)
        ]
        ctx.notes["steps"] = record
        readings: list[dict[str, int] | None] = []  # before each moment
        ends: dict[int, int] = {}

        def off(i: int) -> None:
            if i in on:
                on.discard(i)
                self.steps[i].fault.remove(own[i])
                record[i]["off"] = ctx.mark(f"step {i + 1} off")

        began = time.monotonic()
        pause = threading.Event()  # the schedule's own times, not a synchronisation
        for m, (moment, inject, i) in enumerate(moments):
            pause.wait(max(0.0, began + moment - time.monotonic()))
            readings.append(pool_counters(ctx.service))
            if inject:
                ctx.resources.callback(off, i)  # a failure later still removes it
                on.add(i)
                ctx.in_effect()
                record[i]["counters_on"] = readings[m]
                self.steps[i].fault.inject(own[i])
                record[i]["on"] = ctx.mark(f"step {i + 1} on")
            else:
                off(i)
                ends[i] = m
        for i, m in ends.items():
            record[i]["counters_after"] = readings[m + 1] if m + 1 < len(readings) else None
        for i, step in enumerate(own):
            ctx.evidence.extend(f"step {i + 1}: {e}" for e in step.evidence)
        ctx.over()

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()
