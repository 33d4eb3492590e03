"""What `pgchaos explore` draws from, and how it shrinks (pure logic)."""

from __future__ import annotations

import random

import pytest
import yaml

from chaos.explore.runner import schedule_for
from chaos.explore.space import EXCLUSIVE, KINDS, MAX_FAULTS, Schedule, draw, smaller
from chaos.faults.registry import fault_kinds
from chaos.scenarios.loader import parse_scenarios
from chaos.targets.coupons import COUPONS

SCHEDULES = [schedule_for(seed, index) for seed in range(20) for index in range(5)]


def test_the_same_seed_draws_the_same_schedules() -> None:
    assert schedule_for(7, 3) == schedule_for(7, 3)
    assert schedule_for(7, 3) != schedule_for(7, 4)
    assert draw(random.Random("x")) == draw(random.Random("x"))


def test_schedules_cover_every_kind_overlaps_and_sizes() -> None:
    drawn = {s.kind for schedule in SCHEDULES for s in schedule.steps}
    assert drawn == {k.name for k in KINDS}
    assert any(s.overlaps for s in SCHEDULES)
    assert {len(s.steps) for s in SCHEDULES} == set(range(1, MAX_FAULTS + 1))


def test_exclusive_kinds_never_overlap_another_step() -> None:
    for schedule in SCHEDULES:
        for i, a in enumerate(schedule.steps):
            for b in schedule.steps[i + 1 :]:
                both_on = a.at < b.at + b.duration and b.at < a.at + a.duration
                assert not (both_on and {a.kind, b.kind} & EXCLUSIVE), schedule.describe()


def test_every_drawn_schedule_is_a_valid_scenario_file() -> None:
    for n, schedule in enumerate(SCHEDULES):
        doc = {"scenarios": [schedule.scenario(f"s{n}", schedule.describe())]}
        (scenario,), problems = parse_scenarios(
            yaml.safe_dump(doc), source="drawn", kinds=fault_kinds(COUPONS.fault_kinds())
        )
        assert not problems, problems
        assert scenario.expected_text() == "any"


def test_every_shrink_move_is_smaller_and_shrinking_ends() -> None:
    for schedule in SCHEDULES[:20]:
        current: Schedule = schedule
        moves = 0
        while True:
            candidates = [c for c in smaller(current) if c.size < current.size]
            assert all(c != current for c in candidates)
            if not candidates:
                break
            current = candidates[0]  # always accept: the longest possible shrink
            moves += 1
            assert moves < 500, schedule.describe()
        assert len(current.steps) == 1
        assert (current.concurrency, current.keys) == (1, 1)


def test_the_command_line_takes_a_budget_and_a_shard() -> None:
    import pytest

    from chaos.cli import build_parser

    args = build_parser().parse_args(["explore", "--budget", "10m", "--shard", "1/3"])
    assert (args.budget, args.shard, args.seed, args.repeats) == (600.0, (1, 3), None, 2)
    for wrong in (["--shard", "3/3"], ["--budget", "soon"], ["--budget", "0s"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["explore", "--schedules", "1", *wrong])


def test_the_target_and_third_parties_add_the_kinds_that_declare_their_ranges() -> None:
    from typing import ClassVar

    from chaos.explore.space import declared_kinds, kinds_for
    from chaos.faults.base import Fault, FaultContext

    class DiskFull(Fault):
        explore: ClassVar[dict[str, tuple[float, float, float]]] = {"percent": (80, 100, 80)}

        def __init__(self, percent: int = 90) -> None:
            self.percent = percent

        @property
        def kind(self) -> str:
            return f"disk {self.percent}% full"

        def inject(self, ctx: FaultContext) -> None:
            pass

    class Undeclared(DiskFull):
        explore = None

    (disk,) = declared_kinds({"disk-full": DiskFull, "undeclared": Undeclared})
    assert disk.name == "disk-full"
    rng = random.Random(1)
    assert all(80 <= float(str(disk.draw(rng)["percent"])) <= 100 for _ in range(50))
    assert next(disk.milder({"kind": "disk-full", "percent": 100})) == {
        "kind": "disk-full",
        "percent": 90,
    }
    local = kinds_for("local", fault_kinds(COUPONS.fault_kinds()))
    assert "terminate-mid-transaction" in {k.name for k in local}  # the coupon target's
    bad = type("Bad", (DiskFull,), {"explore": {"percent": (80, 100, 50)}})
    with pytest.raises(ValueError, match="mildest 50"):
        declared_kinds({"bad": bad})


def test_the_ha_stack_draws_one_cluster_fault_at_most() -> None:
    from chaos.explore.space import HA_KINDS, kinds_for

    kinds = kinds_for("ha", fault_kinds(COUPONS.fault_kinds()))
    cluster = {k.name for k in HA_KINDS if k.once}
    assert cluster == {
        "power-cut",
        "switchover",
        "failover",
        "replication-partition",
        "etcd-partition",
    }
    assert not {"database-down", "database-frozen"} & {k.name for k in kinds}
    schedules = [schedule_for(seed, 0, kinds) for seed in range(200)]
    assert cluster <= {s.kind for schedule in schedules for s in schedule.steps}
    for schedule in schedules:
        assert sum(s.kind in cluster for s in schedule.steps) <= 1, schedule.describe()
        doc = {"scenarios": [schedule.scenario("s", schedule.describe(), "ha")]}
        (scenario,), problems = parse_scenarios(
            yaml.safe_dump(doc), source="drawn", kinds=fault_kinds(COUPONS.fault_kinds())
        )
        assert not problems
        assert scenario.stack == "ha"
