"""Run the HA scenarios from the command line: `python -m chaos.ha_cli`.

Brings up the HA stack (etcd, Patroni nodes, Toxiproxy, the service), runs the chosen
scenarios (every one by default) `--repeat` times, healing the cluster before each,
prints one line per run and the failed checks, writes each run's JSON record and
timeline picture to `--report-dir`, tears the stack down, and exits non-zero when any
run failed. `--list` prints the catalogue with each scenario's expected truth.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.errors import ChaosError
from chaos.infra.ha_stack import HaStack
from chaos.report.ha import write_ha_report
from chaos.scenarios.ha import HA_CATALOGUE, HaScenario, heal_cluster

__all__ = ["main", "run_catalogue", "run_named"]

log = logging.getLogger("chaos.ha_cli")


def run_catalogue(
    scenarios: Sequence[HaScenario], *, repeat: int, report_dir: Path | None
) -> list[tuple[str, bool, str]]:
    """Run each scenario `repeat` times on one stack: (name, passed, summary) per run."""
    results: list[tuple[str, bool, str]] = []
    stack = HaStack()
    try:
        started = time.monotonic()
        stack.start()
        print(f"HA stack up in {time.monotonic() - started:.1f} s", flush=True)
        with stack.toxiproxy() as toxiproxy:
            for round_ in range(1, repeat + 1):
                for scenario in scenarios:
                    name = scenario.name if repeat == 1 else f"{scenario.name}-{round_}"
                    began = time.monotonic()
                    try:
                        heal_cluster(stack)
                        run, verdict = scenario.run(stack, toxiproxy)
                    except ChaosError as exc:
                        passed, summary = False, f"ERROR {exc}"
                    else:
                        passed, summary = verdict.passed, verdict.summary()
                        if report_dir is not None:
                            write_ha_report(report_dir / "ha", name, run, verdict)
                    took = time.monotonic() - began
                    print(f"{'PASS' if passed else 'FAIL'} {name} ({took:.1f} s)", flush=True)
                    if not passed:
                        print(summary, flush=True)
                    results.append((name, passed, summary))
    finally:
        stack.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m chaos.ha_cli", description=__doc__)
    parser.add_argument("--scenario", action="append", help="run only this one (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.list:
        for scenario in HA_CATALOGUE:
            print(f"{scenario.name}\n    {scenario.truth}")
        return 0
    try:
        return run_named(args.scenario, repeat=args.repeat, report_dir=args.report_dir)
    except ChaosError as exc:
        parser.error(str(exc))


def run_named(names: Sequence[str] | None, *, repeat: int, report_dir: Path | None) -> int:
    """Run the named scenarios (every one when None) and return the exit code
    (`chaos run --stack ha` comes here)."""
    known = {s.name: s for s in HA_CATALOGUE}
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise ChaosError(f"unknown HA scenario(s) {unknown}; known: {sorted(known)}")
    chosen = [known[n] for n in names] if names else list(HA_CATALOGUE)
    results = run_catalogue(chosen, repeat=repeat, report_dir=report_dir)
    failed = [name for name, passed, _ in results if not passed]
    print(f"{len(results) - len(failed)} of {len(results)} runs passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
