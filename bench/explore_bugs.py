"""Does the toolkit catch planted resilience bugs? Per bug (bench/planted.py): whether
the catalogue catches it, whether `pgchaos explore` catches it within the budget, the
time to its first failure, and the size of the shrunk schedule.

    .venv/bin/python -m bench.explore_bugs                     # every bug, 10 min each
    .venv/bin/python -m bench.explore_bugs --bug missing-deadline --budget 120 --seed 3

Each bug gets its own planted copy of the service on a fresh local stack. Prints one row
per bug and writes bench/results/explore-bugs-<time>.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, env_note, write_json
from bench.planted import BUGS, PlantedCoupons, planted_copy
from chaos.explore.pool import local_stacks
from chaos.explore.runner import explore
from chaos.run.engine import run_selection
from chaos.scenarios.catalogue import catalogue, for_stack

#: The budget explore gets per bug (seconds): the target is a catch within it.
BUDGET = 600.0
#: Explore's target: every planted bug caught, shrunk to at most this many faults.
MAX_SHRUNK_FAULTS = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m bench.explore_bugs", description=__doc__)
    parser.add_argument("--bug", action="append", choices=[b.name for b in BUGS])
    parser.add_argument("--budget", type=float, default=BUDGET, help="explore's seconds per bug")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each shrink candidate")
    parser.add_argument("--skip-catalogue", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="explore's worker processes")
    return parser


def one_bug(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    target = PlantedCoupons(planted_copy(name, workdir))
    new_stack = local_stacks(target)
    row: dict[str, Any] = {"bug": name}
    if not args.skip_catalogue:
        started = time.monotonic()
        scenarios = for_stack(catalogue(target), "local")
        with new_stack() as stack:
            failed = [
                run.scenario.name
                for run in run_selection(stack, scenarios, keep_going=True, target=target)
                if run.result is None or not run.result.passed
            ]
        row["catalogue_catches"] = bool(failed)
        row["catalogue_failed"] = failed
        row["catalogue_seconds"] = round(time.monotonic() - started, 1)
    options: dict[str, Any] = dict(
        seed=args.seed,
        budget=args.budget,
        repeats=args.repeats,
        out_dir=workdir / "explore",
        first_only=True,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    if args.workers > 1:  # each worker starts a stack of its own
        found = explore(None, target, workers=args.workers, new_stack=new_stack, **options)
    else:
        with new_stack() as stack:
            found = explore(stack, target, **options)
    row["explore_catches"] = bool(found.found)
    row["schedules_run"] = len(found.trials)
    if found.found:
        first = found.found[0]
        row.update(
            seconds_to_failure=first["seconds_to_failure"],
            failed_checks=first["failed"],
            shrunk_faults=first["faults"],
            shrunk=first["shrunk"],
            shrink_runs=first["runs"],
        )
    return row


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="explore-bugs-") as tmp:
        for bug in [b for b in BUGS if not args.bug or b.name in args.bug]:
            print(f"== {bug.name}: {bug.breaks}", flush=True)
            rows.append(one_bug(bug.name, args, Path(tmp)))
            print(rows[-1], flush=True)
    print(f"\n{'bug':27} {'catalogue':>9} {'explore':>8} {'to fail':>8} {'shrunk':>7}  checks")
    for r in rows:
        met = r.get("explore_catches") and r.get("shrunk_faults", 99) <= MAX_SHRUNK_FAULTS
        print(
            f"{r['bug']:27} {r.get('catalogue_catches', '-')!s:>9} "
            f"{r['explore_catches']!s:>8} {r.get('seconds_to_failure', '-'):>8} "
            f"{r.get('shrunk_faults', '-'):>7}  {r.get('failed_checks', '-')} "
            f"{'met' if met else 'MISSED'}"
        )
    write_json(
        RESULTS_DIR / f"explore-bugs-{time.strftime('%Y%m%d-%H%M%S')}.json",
        {
            "machine": env_note(),
            "budget": args.budget,
            "seed": args.seed,
            "workers": args.workers,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
