"""`pgchaos explore` has teeth: against a copy of the service with a planted bug (a 503
without Retry-After), a seeded schedule fails on that check, shrinks to at most two
faults, and the scenario file it writes fails on the same check when run again."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest

from bench.planted import PlantedCoupons, planted_copy
from chaos.explore.runner import default_kinds, explore, schedule_for, write_summary
from chaos.infra.stack import LocalStack
from chaos.run.engine import run_selection
from chaos.scenarios.loader import load_scenarios
from chaos.targets.coupons import COUPONS

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

#: The check the planted bug breaks.
BROKEN = "retry-after-on-503"


def first_seed_with(kind: str) -> int:
    """The first seed whose first schedule starts with `kind`: drawing is pure, so this
    is the same seed on every machine."""
    kinds = default_kinds(COUPONS)
    return next(s for s in count() if schedule_for(s, 0, kinds).steps[0].kind == kind)


def test_explore_finds_a_planted_bug_and_shrinks_it_to_a_scenario_file(tmp_path: Path) -> None:
    target = PlantedCoupons(planted_copy("lost-retry-after", tmp_path))
    seed = first_seed_with("proxy-down")
    stack = LocalStack(
        service_command=target.service_command, service_settings_names=COUPONS.settings_names
    )
    try:
        stack.start()
        found = explore(
            stack, target, seed=seed, schedules=1, repeats=1, out_dir=tmp_path / "explore"
        )
        assert len(found.found) == 1, found.trials
        (shrunk,) = found.found
        assert BROKEN in shrunk["failed"]  # type: ignore[operator]
        assert shrunk["faults"] <= 2  # type: ignore[operator]
        assert found.coverage()["schedules"] == 1
        write_summary(found, tmp_path / "reports" / "explore.json")
        page = (tmp_path / "reports" / "explore.html").read_text()
        assert str(shrunk["original"]) in page
        assert str(shrunk["shrunk"]) in page
        assert "data:image/png;base64," in page  # the shrunk run's timeline
        (scenario,) = load_scenarios([Path(str(shrunk["file"]))])
        (rerun,) = run_selection(stack, [scenario], target=target)
        assert rerun.result is not None
        assert BROKEN in {c.name for c in rerun.result.failed_checks()}
    finally:
        stack.stop()


def test_workers_share_one_seeds_schedules_and_leave_nothing_behind(tmp_path: Path) -> None:
    import functools

    import psutil

    kinds = default_kinds(COUPONS)
    new_stack = functools.partial(
        LocalStack,
        service_command=tuple(COUPONS.service_command),
        service_settings_names=tuple(COUPONS.settings_names),
    )
    seed = first_seed_with("proxy-down")
    found = explore(
        None,
        COUPONS,
        seed=seed,
        schedules=3,
        workers=2,
        new_stack=new_stack,
        out_dir=tmp_path / "explore",
    )
    # Every index ran once, on one worker or the other, and drew the schedule one worker
    # would have drawn; the unmodified service passes them.
    assert [t.index for t in found.trials] == [0, 1, 2]
    assert [t.schedule for t in found.trials] == [schedule_for(seed, i, kinds) for i in range(3)]
    assert not [t for t in found.trials if t.fails], [(t.failed, t.error) for t in found.trials]
    assert found.coverage()["workers"] == 2
    # Every worker and its stack stopped (multiprocessing's own resource tracker stays
    # for the life of this process, as it does for any user of multiprocessing).
    left = [
        p.cmdline()
        for p in psutil.Process().children(recursive=True)
        if "multiprocessing.resource_tracker" not in " ".join(p.cmdline())
    ]
    assert left == []
