"""Memory of the service under claim load: RSS (and USS) of its process before, during
and after `--claims` claims.

One throwaway PostgreSQL cluster, the service (`python -m app`, default settings) straight
to it, one hot coupon with an enormous stock, `--concurrency` clients each claiming as a
new user. psutil reads the service's memory: at idle after start-up, after a warm-up
(`--warmup` claims: first-use allocations, caches, the pool's prepared state), every
`--interval` seconds during the load, right after it, and after `--settle` idle seconds.
Growth is reported against the post-warm-up figure (what would keep growing with a leak)
and against idle.

Usage::

    .venv/bin/python -m bench.memory
    .venv/bin/python -m bench.memory --claims 100000 --concurrency 32 \\
        --json bench/results/memory.json
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.common import (
    RESULTS_DIR,
    Progress,
    create_coupon,
    drive_claims,
    env_note,
    run_async,
    write_json,
)
from chaos.infra.postgres import PostgresCluster
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from chaos.targets.coupons import COUPONS

__all__ = ["main"]

MIB = 1024 * 1024


def read_memory(proc: psutil.Process) -> dict[str, float | None]:
    """RSS and USS in MiB (USS None when /proc/PID/smaps is not readable)."""
    rss = proc.memory_info().rss / MIB
    try:
        uss: float | None = proc.memory_full_info().uss / MIB
    except (psutil.AccessDenied, AttributeError):
        uss = None
    return {"rss_mib": rss, "uss_mib": uss}


class Sampler:
    """Reads the service's memory every `interval` seconds from a thread."""

    def __init__(
        self, proc: psutil.Process, interval: float, claims_done: Callable[[], int]
    ) -> None:
        self.proc = proc
        self.interval = interval
        self.claims_done = claims_done
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._zero = 0.0

    def _run(self) -> None:
        while True:
            try:
                memory = read_memory(self.proc)
            except psutil.NoSuchProcess:
                return
            self.samples.append(
                {"t": time.monotonic() - self._zero, "claims": self.claims_done(), **memory}
            )
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Sampler:
        self._zero = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


GAUGES = ("process_asyncio_tasks", "process_threads", "process_fds", "db_pool_size")
"""Service gauges read from /metrics next to the memory figures (leak hints)."""


def _gauges(url: str) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        metrics = read_metrics(client)
    return {name: metrics[name] for name in GAUGES if name in metrics}


def _point(label: str, proc: psutil.Process, url: str, claims: int) -> dict[str, Any]:
    return {"at": label, "claims": claims, **read_memory(proc), "gauges": _gauges(url)}


def _db_claims(url: str, coupon: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM claims WHERE coupon_name = %s", (coupon,)
        ).fetchone()
    return int(row[0]) if row else 0


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description="RSS of the service before, during and after many claims.",
    )
    parser.add_argument("--claims", type=int, default=100_000, help="claims of the measured load")
    parser.add_argument("--warmup", type=int, default=2_000, help="claims before the baseline")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds after the load")
    parser.add_argument(
        "--pool-size", type=int, default=None, help="DB_POOL_MIN_SIZE and DB_POOL_MAX_SIZE"
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "memory.json", help="JSON output"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.claims < 1 or args.warmup < 0 or args.concurrency < 1:
        print("--claims and --concurrency must be positive", file=sys.stderr)
        return 2
    env: dict[str, str] = {}
    if args.pool_size is not None:
        env["DB_POOL_MIN_SIZE"] = env["DB_POOL_MAX_SIZE"] = str(args.pool_size)
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = env_note()
    coupon = "bench-memory"
    points: list[dict[str, Any]] = []

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", flush=True)

    cluster = PostgresCluster()
    service: ServiceProcess | None = None
    try:
        say("starting PostgreSQL and the service")
        cluster.start()
        service = ServiceProcess(
            database_url=cluster.url, env=env, settings_names=COUPONS.settings_names
        )
        service.start()
        assert service.pid is not None
        proc = psutil.Process(service.pid)
        threading.Event().wait(1.0)  # let start-up allocations finish before the idle figure
        points.append(_point("idle", proc, service.url, 0))
        create_coupon(service.url, coupon)
        warm_ok = 0
        if args.warmup:
            say(f"warm-up: {args.warmup} claims")
            warm = run_async(
                drive_claims(
                    service.url,
                    coupon,
                    clients=args.concurrency,
                    user_prefix="warm",
                    total=args.warmup,
                )
            )
            warm_ok = sum(1 for op in warm.ops if op[2] == 200)
        points.append(_point("after warm-up", proc, service.url, 0))
        say(f"load: {args.claims} claims, {args.concurrency} clients")
        progress = Progress()
        load_started = time.monotonic()
        with Sampler(proc, args.interval, lambda: progress.done) as sampler:
            load = run_async(
                drive_claims(
                    service.url,
                    coupon,
                    clients=args.concurrency,
                    user_prefix="load",
                    total=args.claims,
                    progress=progress,
                )
            )
        load_seconds = time.monotonic() - load_started
        points.append(_point("after load", proc, service.url, args.claims))
        threading.Event().wait(args.settle)  # idle on purpose: what stays allocated
        points.append(_point(f"after {args.settle:g} s idle", proc, service.url, args.claims))
        db_claims = _db_claims(cluster.url, coupon)
    finally:
        try:
            if service is not None:
                service.stop()
        finally:
            cluster.stop()

    statuses = load.statuses()
    ok = statuses.get("200", 0)
    during = sampler.samples
    base = points[1]["rss_mib"]
    idle = points[0]["rss_mib"]
    final = points[-1]["rss_mib"]
    peak = max((s["rss_mib"] for s in during), default=None)
    growth = final - base
    summary = {
        "rss_idle_mib": idle,
        "rss_after_warmup_mib": base,
        "rss_peak_during_mib": peak,
        "rss_after_load_mib": points[2]["rss_mib"],
        "rss_final_mib": final,
        "growth_since_warmup_mib": growth,
        "growth_since_idle_mib": final - idle,
        "growth_per_10k_claims_kib": growth * 1024 * 10_000 / max(1, args.claims),
        "uss_after_warmup_mib": points[1]["uss_mib"],
        "uss_final_mib": points[-1]["uss_mib"],
        "claims_per_s": ok / load_seconds if load_seconds > 0 else 0.0,
    }

    print()
    print(f"{'at':24} {'claims':>8} {'RSS MiB':>8} {'USS MiB':>8}  gauges")
    for p in points:
        print(
            f"{p['at']:24} {p['claims']:>8} {_f(p['rss_mib']):>8} {_f(p['uss_mib']):>8}  "
            f"{p['gauges']}"
        )
    if during:
        step = max(1, len(during) // 10)
        shown = during[::step] + ([during[-1]] if (len(during) - 1) % step else [])
        print("\nduring the load (every ~%g s):" % (args.interval * step))
        for s in shown:
            print(f"  t={s['t']:6.1f} s  claims={s['claims']:>7}  RSS={_f(s['rss_mib'])} MiB")
    print(
        f"\nRSS: idle {idle:.1f} MiB, after warm-up {base:.1f} MiB, peak during "
        f"{_f(peak)} MiB, final {final:.1f} MiB"
    )
    print(
        f"growth since warm-up: {growth:+.2f} MiB over {args.claims} claims "
        f"({summary['growth_per_10k_claims_kib']:+.1f} KiB per 10,000); "
        f"since idle: {final - idle:+.2f} MiB"
    )
    print(
        f"answers: {dict(statuses)}; {summary['claims_per_s']:.0f} claims/s; claims in the "
        f"database: {db_claims} (expected {ok + warm_ok})"
    )
    consistent = db_claims == ok + warm_ok
    if not consistent:
        print("WARNING: the database does not hold exactly the acknowledged claims")
    payload = {
        "benchmark": "memory",
        "started_at": started_at,
        "machine": machine,
        "options": {
            "claims": args.claims,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "interval": args.interval,
            "settle": args.settle,
            "service_settings": env,
        },
        "summary": summary,
        "points": points,
        "samples": during,
        "statuses": dict(statuses),
        "db_claims": db_claims,
        "acknowledged": ok + warm_ok,
        "wall_seconds": time.monotonic() - started,
    }
    write_json(args.json, payload)
    print(f"JSON: {args.json}")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
