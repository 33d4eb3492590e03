"""The speed-up of `pgchaos explore --workers N`: the same seed's first K schedules run on
one stack, then on N worker processes with a stack each; prints the wall time of each,
schedules per minute, the speed-up over one worker and the speed-up per core (divided by
the cores N workers can use, min(N, cores)).

    .venv/bin/python -m bench.explore_workers                  # K=8, N=1 and 2
    .venv/bin/python -m bench.explore_workers --schedules 12 --workers 1 2 3

Against the unmodified service (nothing fails, so nothing is shrunk and every schedule
costs one run). Writes bench/results/explore-workers-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, env_note, write_json
from chaos.explore.pool import local_stacks
from chaos.explore.runner import explore
from chaos.targets.coupons import COUPONS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m bench.explore_workers", description=__doc__)
    parser.add_argument("--schedules", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=1)
    return parser


def one(workers: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    new_stack = local_stacks(COUPONS)
    started = time.monotonic()
    if workers == 1:
        stack = new_stack()
        try:
            stack.start()
            found = explore(stack, COUPONS, seed=args.seed, schedules=args.schedules, out_dir=out)
        finally:
            stack.stop()
    else:
        found = explore(
            None,
            COUPONS,
            seed=args.seed,
            schedules=args.schedules,
            out_dir=out,
            workers=workers,
            new_stack=new_stack,
        )
    wall = time.monotonic() - started
    return {
        "workers": workers,
        "schedules": len(found.trials),
        "failed": sum(t.fails for t in found.trials),
        "wall_seconds": round(wall, 1),
        "schedules_per_minute": round(60 * len(found.trials) / wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="explore-workers-") as tmp:
        for n in args.workers:
            rows.append(one(n, args, Path(tmp) / str(n)))
            print(rows[-1], flush=True)
    base = rows[0]["wall_seconds"] * rows[0]["workers"]  # as if one worker ran them
    print(f"\n{cores} cores; seed {args.seed}, {args.schedules} schedules")
    print(f"{'workers':>7} {'wall s':>7} {'sched/min':>9} {'speed-up':>8} {'per core':>8}")
    for r in rows:
        speedup = base / r["wall_seconds"]
        r["speedup"] = round(speedup, 2)
        r["speedup_per_core"] = round(speedup / min(r["workers"], cores), 2)
        print(
            f"{r['workers']:>7} {r['wall_seconds']:>7} {r['schedules_per_minute']:>9} "
            f"{r['speedup']:>8} {r['speedup_per_core']:>8}"
        )
    write_json(
        RESULTS_DIR / f"explore-workers-{time.strftime('%Y%m%d-%H%M%S')}.json",
        {"machine": env_note(), "seed": args.seed, "rows": rows},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
