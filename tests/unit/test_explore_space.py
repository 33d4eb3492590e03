"""What `pgchaos explore` draws from, and how it shrinks (pure logic)."""

from __future__ import annotations

import random

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
