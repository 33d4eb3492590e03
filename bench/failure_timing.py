"""Failure timing: how fast the service fails, and how fast it recovers, per fault type.

Runs the chaos catalogue (or `--scenario` names) `--repeat` times with
`chaos.run.engine.run_scenario` against one `chaos.infra.stack.LocalStack` (PostgreSQL, Toxiproxy,
the service with the chaos settings: acquire timeout 0.5 s, deadline 2 s, ...), and
reports per scenario:

- time to fail: p50 and p99 of the latency of failed claims sent and answered while the
  fault was fully in effect (`ScenarioResult.time_to_fail`), pooled over the repeats;
  the same for 503 answers alone (pool exhaustion: 503 within the acquire timeout) and
  504 answers alone (the deadline);
- time to recover: from the fault's removal to the end of the first successful claim
  (`ScenarioResult.time_to_recover`), min / median / max over the repeats;
- how many runs passed every check of the engine.

Usage::

    .venv/bin/python -m bench.failure_timing --repeat 3
    .venv/bin/python -m bench.failure_timing --repeat 1 --scenario pool-exhaustion \\
        --scenario proxy-down --json bench/results/failure_timing.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS_DIR, env_note, median, write_json
from chaos.core.history import percentile
from chaos.core.limits import Limits
from chaos.infra.probes import read_limits
from chaos.infra.stack import LocalStack
from chaos.run.engine import ScenarioResult, run_selection
from chaos.scenarios.catalogue import by_name, catalogue, for_stack
from chaos.scenarios.model import Scenario
from chaos.targets.coupons import COUPONS

__all__ = ["main"]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def run_record(result: ScenarioResult, repeat: int) -> dict[str, Any]:
    """One run's figures (times in ms) and the raw latencies for pooling."""
    during = result.during()
    failed = [op.latency for op in during if op.status != 200]
    by_status: dict[str, list[float]] = {}
    for op in during:
        if op.status != 200:
            by_status.setdefault(op.label, []).append(op.latency)
    return {
        "scenario": result.scenario.name,
        "repeat": repeat,
        "run_id": result.run_id,
        "passed": result.passed,
        "failed_checks": {c.name: c.detail for c in result.failed_checks()},
        "statuses_during": dict(result.statuses_during()),
        "fault_seconds": result.fault_end - result.fault_start,
        "time_to_fail_p50_ms": _ms(result.time_to_fail(50)),
        "time_to_fail_p99_ms": _ms(result.time_to_fail(99)),
        "time_to_recover_ms": _ms(result.time_to_recover),
        "settle_seconds": result.settle_seconds,
        "wall_seconds": result.wall_seconds,
        "_failed_latencies": failed,
        "_latencies_by_status": by_status,
    }


def aggregate(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario over its repeats: pooled fail percentiles, recovery min/median/max."""
    failed = [x for r in runs for x in r.get("_failed_latencies", [])]
    statuses: Counter[str] = Counter()
    per_status: dict[str, list[float]] = {}
    for r in runs:
        statuses.update(r.get("statuses_during", {}))
        for status, values in r.get("_latencies_by_status", {}).items():
            per_status.setdefault(status, []).extend(values)
    ttr = [r["time_to_recover_ms"] for r in runs if r.get("time_to_recover_ms") is not None]
    return {
        "scenario": scenario.name,
        "fault": scenario.fault.kind,
        "expected": scenario.expected_text(),
        "runs": len(runs),
        "passed": sum(1 for r in runs if r.get("passed")),
        "errors": [r["error"] for r in runs if "error" in r],
        "statuses_during": dict(statuses),
        "time_to_fail_ms": {
            "n": len(failed),
            "p50": _ms(percentile(failed, 50)),
            "p99": _ms(percentile(failed, 99)),
        },
        "by_status_ms": {
            status: {
                "n": len(values),
                "p50": _ms(percentile(values, 50)),
                "p99": _ms(percentile(values, 99)),
                "max": _ms(max(values)),
            }
            for status, values in sorted(per_status.items())
        },
        "time_to_recover_ms": {
            "n": len(ttr),
            "min": min(ttr, default=None),
            "median": median(ttr),
            "max": max(ttr, default=None),
        },
    }


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(rows: list[dict[str, Any]], limits: Limits) -> None:
    print(
        f"limits: acquire {limits.acquire_timeout:g} s, deadline {limits.request_deadline:g} s, "
        f"statement {limits.statement_timeout:g} s, health {limits.health_timeout:g} s, "
        f"pool {limits.pool_min_size}-{limits.pool_max_size}, "
        f"max waiting {limits.pool_max_waiting}"
    )
    head = (
        f"{'scenario':32} {'pass':>5} {'fail p50':>8} {'fail p99':>8} "
        f"{'503 n':>6} {'503 p50':>7} {'503 p99':>7} {'504 n':>6} {'504 p50':>7} "
        f"{'504 p99':>7}  {'TTR min/med/max (ms)':>20}  answers during fault"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        s503 = r["by_status_ms"].get("503", {})
        s504 = r["by_status_ms"].get("504", {})
        ttr = r["time_to_recover_ms"]
        ttf = r["time_to_fail_ms"]
        print(
            f"{r['scenario']:32} {r['passed']:>2}/{r['runs']:<2} {_f(ttf['p50']):>8} "
            f"{_f(ttf['p99']):>8} {s503.get('n', 0):>6} {_f(s503.get('p50')):>7} "
            f"{_f(s503.get('p99')):>7} {s504.get('n', 0):>6} {_f(s504.get('p50')):>7} "
            f"{_f(s504.get('p99')):>7}  "
            f"{_f(ttr['min']):>6}/{_f(ttr['median']):>6}/{_f(ttr['max']):>6}  "
            f"{r['statuses_during']}"
        )
    print(
        "\nfail = every non-200 answer sent and answered while the fault was fully on; "
        "times in ms; TTR = fault removed -> first successful claim."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.failure_timing",
        description="Time to fail and time to recover per fault of the chaos catalogue.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.name for s in for_stack(catalogue(COUPONS), "local")],
        metavar="NAME",
        help="a catalogue scenario (repeatable; default: all). `python -m chaos list`",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario")
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "failure_timing.json", help="JSON output"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    pool = for_stack(catalogue(COUPONS), "local")
    scenarios = [by_name(pool, n) for n in args.scenario] if args.scenario else pool
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = env_note()
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {msg}", flush=True)

    stack = LocalStack(service_settings_names=COUPONS.settings_names)
    try:
        say("starting PostgreSQL, Toxiproxy and the service")
        stack.start()
        with httpx.Client(base_url=stack.endpoints.service_url, timeout=10.0) as client:
            limits = read_limits(client)
        for run in run_selection(
            stack, scenarios, repeat=args.repeat, keep_going=True, target=COUPONS, progress=say
        ):
            if run.result is None:
                say(f"{run.label}: ERROR {run.error}")
                runs[run.scenario.name].append(
                    {"scenario": run.scenario.name, "repeat": run.repeat, "error": str(run.error)}
                )
                continue
            result = run.result
            record = run_record(result, run.repeat)
            runs[run.scenario.name].append(record)
            ttr = record["time_to_recover_ms"]
            say(
                f"{run.label}: {'PASS' if result.passed else 'FAIL'} "
                f"{record['statuses_during']}, fail p50/p99 "
                f"{_f(record['time_to_fail_p50_ms'])}/"
                f"{_f(record['time_to_fail_p99_ms'])} ms, recovered in {_f(ttr)} ms"
                + (
                    f"; failed checks: {', '.join(record['failed_checks'])}"
                    if record["failed_checks"]
                    else ""
                )
            )
    finally:
        stack.stop()

    rows = [aggregate(s, runs[s.name]) for s in scenarios]
    print()
    print_table(rows, limits)
    payload = {
        "benchmark": "failure_timing",
        "started_at": started_at,
        "machine": machine,
        "options": {"repeat": args.repeat, "scenarios": [s.name for s in scenarios]},
        "limits": asdict(limits),
        "scenarios": rows,
        "runs": [
            {k: v for k, v in r.items() if not k.startswith("_")}
            for s in scenarios
            for r in runs[s.name]
        ],
        "wall_seconds": time.monotonic() - started,
    }
    write_json(args.json, payload)
    print(f"JSON: {args.json}")
    return 0 if all(r["passed"] == r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
