"""A schedule of faults on one clock (the `schedule` fault kind): steps on and off at
their times, overlapping, removed once each, and declared in scenario files."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chaos.faults.base import IN_EFFECT, OVER, Fault, FaultContext
from chaos.faults.registry import build_fault, fault_kinds
from chaos.faults.schedule import Step, Timeline
from chaos.scenarios.loader import ScenarioFileError, load_scenarios
from chaos.scenarios.model import ANY_STATUS
from tests.unit.test_fault_chain import context


@dataclass(frozen=True)
class Mark(Fault):
    name: str
    log: list[tuple[str, float]] = field(compare=False)
    fail: bool = False

    @property
    def kind(self) -> str:
        return self.name

    def inject(self, ctx: FaultContext) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} failed")
        self.log.append((f"+{self.name}", ctx.now()))

    def remove(self, ctx: FaultContext) -> None:
        self.log.append((f"-{self.name}", ctx.now()))


#: Steps fire at their times, within this much of them (a thread wakes up late).
LATE = 0.05


def test_steps_overlap_on_one_clock_and_each_is_removed_once() -> None:
    log: list[tuple[str, float]] = []
    timeline = Timeline((Step(0.0, 0.2, Mark("a", log)), Step(0.1, 0.2, Mark("b", log))))
    ctx = context()
    began = ctx.now()
    timeline.inject(ctx)
    timeline.remove(ctx)
    assert [name for name, _ in log] == ["+a", "+b", "-a", "-b"]
    for (name, at), due in zip(log, [0.0, 0.1, 0.2, 0.3], strict=True):
        assert due <= at - began <= due + LATE, (name, at - began)
    assert ctx.events[IN_EFFECT] <= ctx.events["step 1 on"] <= ctx.events[OVER]
    assert timeline.length == pytest.approx(0.3)


def test_a_failing_step_leaves_the_others_to_remove() -> None:
    log: list[tuple[str, float]] = []
    timeline = Timeline((Step(0.0, 1.0, Mark("a", log)), Step(0.05, 1.0, Mark("b", log, True))))
    ctx = context()
    with pytest.raises(RuntimeError, match="b failed"):
        timeline.inject(ctx)
    started = time.monotonic()
    timeline.remove(ctx)
    assert time.monotonic() - started < LATE  # removed at once, not at its time
    assert [name for name, _ in log] == ["+a", "-b", "-a"]


def test_a_schedule_is_declared_with_faults_of_any_kind(tmp_path: Path) -> None:
    fault = build_fault(
        fault_kinds(),
        {
            "kind": "schedule",
            "steps": [
                {"at": 0, "for": 1.5, "fault": {"kind": "proxy-down"}},
                {"at": 1, "for": 2, "fault": {"kind": "toxic", "type": "latency"}},
            ],
        },
    )
    assert isinstance(fault, Timeline)
    assert fault.length == 3.0
    assert fault.kind.startswith("schedule(proxy disabled at 0 s for 1.5 s; latency(")
    path = tmp_path / "s.yaml"
    path.write_text(
        "scenarios:\n"
        "  - name: s\n    description: d\n    duration: 0\n"
        "    fault: {kind: schedule, steps: [{at: 0, for: 1, fault: {kind: proxy-down}}]}\n"
        "    expect: {during: any}\n"
    )
    (scenario,) = load_scenarios([path])
    assert scenario.expect.during == ANY_STATUS
    assert scenario.expected_text() == "any"
    for wrong in ("-1", "0"):
        path.write_text(path.read_text().replace("for: 1", f"for: {wrong}"))
        with pytest.raises(ScenarioFileError, match="step 1: for: expected seconds > 0"):
            load_scenarios([path])
        path.write_text(path.read_text().replace(f"for: {wrong}", "for: 1"))
