"""Claim throughput: the database's ceiling (pgbench running the service's claim SQL), the
service straight to PostgreSQL, and the service through Toxiproxy with no toxic.

One run, one throwaway PostgreSQL cluster (initdb/pg_ctl), one Toxiproxy server:

(a) pgbench, `-M prepared`, runs the CTE of `app/repository.py` (`_CLAIM_SQL`) with a
    new user per transaction on one hot coupon with an enormous stock, for each
    `--pgbench-clients` count: claims/s and latency. This is the ceiling.
(b) the service (`python -m app`, default settings) with DATABASE_URL straight to the
    cluster, driven over HTTP by `--clients` concurrent httpx.AsyncClient clients (each
    claim by a new user, one hot coupon with an enormous stock) for `--seconds` after a
    warm-up: claims/s, p50 and p99 latency of the successful claims.
(c) the same through a Toxiproxy proxy with no toxic.

Every run gets its own coupon. The load generator, pgbench, the service, Toxiproxy and
PostgreSQL all share the machine's cores: the figures are for this box, not a capacity
plan; the CPU columns say who used what.

Usage::

    .venv/bin/python -m bench.claim_throughput --seconds 10
    .venv/bin/python -m bench.claim_throughput --seconds 10 --clients 16,64 \\
        --pgbench-clients 4,16 --pool-size 8 --json bench/results/claim_throughput.json
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from app.repository import _CLAIM_SQL, schema_sql
from bench.common import (
    HUGE_STOCK,
    RESULTS_DIR,
    CpuMeter,
    create_coupon,
    drive_claims,
    env_note,
    percentile,
    process_tree,
    run_async,
    write_json,
)
from chaos.infra.postgres import PostgresCluster
from chaos.infra.processes import ManagedProcess, as_unprivileged
from chaos.infra.service import ServiceProcess
from chaos.infra.stack import find_toxiproxy_server
from chaos.infra.toxiproxy import ToxiproxyClient, wait_until_ready
from chaos.infra.waiting import free_port

__all__ = ["main", "pgbench_script"]

CPU_NOTE = (
    "the load generator (this process, one Python thread: at most 100% of one core), "
    "pgbench, the service, Toxiproxy and PostgreSQL share the same {cpus} CPU core(s); "
    "claims/s and latency are bounded by that competition (LOADGEN-BOUND: the load "
    "generator used >= 85% of a core; SATURATED: the measured processes together used "
    ">= 85% of all cores; `others` is CPU used by processes outside this benchmark during "
    "the run, e.g. somebody's tests); CPU ms per claim barely depends on it"
)


def pgbench_script() -> str:
    """The service's claim statement with pgbench variables.

    `:coupon` comes from `-D coupon=...`; the user id is unique per transaction without
    random collisions (a duplicate would abort the pgbench client on the unique index):
    a per-client counter `n` (pgbench variables live for the client's whole run) offset
    by `:client_id`. Both go to the server as parameters of the prepared statement.
    """
    statement = _CLAIM_SQL.replace("%(coupon)s", ":coupon").replace("%(user)s", ":uid")
    if "%(" in statement:
        raise RuntimeError(f"unexpected placeholder left in the claim SQL: {statement}")
    return (
        "\\set n :n + 1\n"
        "\\set uid :client_id * 1000000000000 + :n\n" + statement.strip().rstrip(";") + ";\n"
    )


def _admin(cluster: PostgresCluster, statement: str) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(statement.encode())


def _settle(cluster: PostgresCluster) -> None:
    """Even the ground between runs: vacuum the hot rows' dead versions, checkpoint."""
    _admin(cluster, "VACUUM ANALYZE")
    _admin(cluster, "CHECKPOINT")


def _db_claims(cluster: PostgresCluster, coupon: str) -> int:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM claims WHERE coupon_name = %s", (coupon,)
        ).fetchone()
    return int(row[0]) if row else 0


def run_pgbench(cluster: PostgresCluster, *, clients: int, seconds: int) -> dict[str, Any]:
    """pgbench with the claim script on a fresh hot coupon; its figures."""
    assert cluster.tmpdir is not None
    coupon = f"bench-pgbench-c{clients}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO coupons (name, amount, remaining_amount) VALUES (%s, %s, %s)",
            (coupon, HUGE_STOCK, HUGE_STOCK),
        )
    # The cluster's own temp dir: owned by postgres (pgbench runs as postgres when we are
    # root) and removed with the cluster.
    workdir = cluster.tmpdir / f"pgbench-c{clients}"
    workdir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    script = workdir / "claim.sql"
    script.write_text(pgbench_script(), encoding="utf-8")
    script.chmod(0o644)
    threads = max(1, min(clients, os.cpu_count() or 1))
    argv = as_unprivileged(
        [
            str(cluster.bindir / "pgbench"),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={threads}",
            f"--time={seconds}",
            f"--file={script}",
            f"--define=coupon={coupon}",
            "--define=n=0",
            "--log",
            f"--log-prefix={workdir / 'txlog'}",
            f"--host={cluster.host}",
            f"--port={cluster.port}",
            "--username=postgres",
            cluster.dbname,
        ]
    )
    meter = CpuMeter({"postgres": lambda: process_tree(cluster.postmaster_pid())})
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.start()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=workdir, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"pgbench with {clients} clients did not finish") from exc
    cpu = meter.stop()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["pgbench"] = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    cpu["others"] = max(0.0, cpu.get("others", 0.0) - cpu["pgbench"])  # not somebody else's
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr[-2000:]}")

    def field(pattern: str) -> float | None:
        m = re.search(pattern, done.stdout)
        return float(m.group(1)) if m else None

    latencies: list[float] = []  # seconds, from the per-transaction logs
    for log in workdir.glob("txlog*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1e6)
    shutil.rmtree(workdir, ignore_errors=True)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    tps = field(r"tps = ([0-9.]+) \(without initial connection time\)")
    return {
        "run": "pgbench",
        "clients": clients,
        "connections": clients,
        "seconds": seconds,
        "claims": int(field(r"number of transactions actually processed: (\d+)") or 0),
        "failed": int(field(r"number of failed transactions: (\d+)") or 0),
        "claims_per_s": tps or 0.0,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "mean_ms": field(r"latency average = ([0-9.]+) ms"),
        "db_claims": _db_claims(cluster, coupon),
        "cpu_percent": {k: 100.0 * v / meter.wall for k, v in cpu.items()},
    }


@contextmanager
def toxiproxy_in_front(cluster: PostgresCluster) -> Iterator[tuple[str, ManagedProcess]]:
    """A Toxiproxy server with a proxy `postgres` (no toxic) to the cluster, like
    chaos.infra.stack.LocalStack builds it; yields the proxied database URL and the server."""
    workdir = Path(tempfile.mkdtemp(prefix="coupon-bench-toxiproxy-"))
    api_port = free_port()
    server = ManagedProcess(
        [str(find_toxiproxy_server()), "-host", "127.0.0.1", "-port", str(api_port)],
        name=f"toxiproxy-server on port {api_port}",
        log_path=workdir / "toxiproxy.log",
    )
    try:
        server.start()
        url = f"http://127.0.0.1:{api_port}"
        wait_until_ready(url, timeout=15.0)
        proxy_port = free_port()
        with ToxiproxyClient(url) as client:
            client.create_proxy(
                "postgres",
                listen=f"127.0.0.1:{proxy_port}",
                upstream=f"{cluster.host}:{cluster.port}",
            )
        yield (
            f"postgresql://postgres@127.0.0.1:{proxy_port}/{cluster.dbname}?sslmode=disable",
            server,
        )
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def run_service(
    label: str,
    service: ServiceProcess,
    cluster: PostgresCluster,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    connections: int,
    toxiproxy_pid: int | None = None,
) -> dict[str, Any]:
    """Flash-sale claim load over HTTP against a running service; its figures."""
    coupon = f"bench-{label}-c{clients}"
    create_coupon(service.url, coupon)
    me = psutil.Process()
    groups = {
        "service": lambda: process_tree(service.pid),
        "postgres": lambda: process_tree(cluster.postmaster_pid()),
        "loadgen": lambda: [me],
    }
    if toxiproxy_pid is not None:
        groups["toxiproxy"] = lambda: process_tree(toxiproxy_pid)
    meter = CpuMeter(groups)
    load = run_async(
        drive_claims(
            service.url,
            coupon,
            clients=clients,
            user_prefix=f"{label}-{clients}",
            seconds=seconds,
            warmup=warmup,
            on_window=(meter.start, meter.stop),
        )
    )
    acknowledged = sum(1 for op in load.ops if op[2] == 200)
    db_claims = _db_claims(cluster, coupon)
    return {
        "run": label,
        "clients": clients,
        "connections": connections,
        **load.summary(),
        "acknowledged_total": acknowledged,
        "db_claims": db_claims,
        "cpu_percent": meter.share(),
    }


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _cpu_text(cpu: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:.0f}%" for k, v in cpu.items())


LOADGEN_BOUND = 85.0
"""Load generator CPU (% of one core) from which a row is flagged as bounded by it."""

SATURATED = 85.0
"""CPU of the measured processes together (% of every core) from which a row is flagged
as bounded by the machine."""


def _cpu_per_claim(row: Mapping[str, Any]) -> dict[str, float]:
    """CPU milliseconds per successful claim, per process group (competition-proof)."""
    rate = row["claims_per_s"]
    if not rate:
        return {}
    return {k: 10.0 * v / rate for k, v in row["cpu_percent"].items()}


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'run':10} {'clients':>7} {'conns':>5} {'claims/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'mean ms':>8}  other answers / CPU (% of one core)"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        other = {k: v for k, v in r.get("statuses", {}).items() if k != "200"}
        if r.get("failed"):
            other["failed"] = r["failed"]
        print(
            f"{r['run']:10} {r['clients']:>7} {r['connections']:>5} "
            f"{r['claims_per_s']:>9.0f} {_fmt(r['p50_ms']):>8} {_fmt(r['p99_ms']):>8} "
            f"{_fmt(r['mean_ms']):>8}  {other or 'none'} / {_cpu_text(r['cpu_percent'])}"
            + (" LOADGEN-BOUND" if r["loadgen_bound"] else "")
            + (" SATURATED" if r["saturated"] else "")
        )
    print("\nCPU ms per claim (barely depends on the competition; claims/s and latency do):")
    for r in rows:
        per = " ".join(f"{k}={v:.3f}" for k, v in r["cpu_ms_per_claim"].items() if k != "others")
        print(f"  {r['run']:10} {r['clients']:>4} clients: {per}")


def ratios(rows: list[dict[str, Any]], pool_size: int) -> dict[str, Any]:
    """service/pgbench (against the best pgbench, and against pgbench with as many
    connections as the pool) and proxied/direct at equal client counts."""
    bench = [r for r in rows if r["run"] == "pgbench"]
    best = max(bench, key=lambda r: r["claims_per_s"], default=None)
    same_conns = next((r for r in bench if r["clients"] == pool_size), None)
    out: dict[str, Any] = {
        "pgbench_ceiling_claims_per_s": best["claims_per_s"] if best else None,
        "pgbench_ceiling_clients": best["clients"] if best else None,
        "service_over_pgbench": [],
        "proxied_over_direct": [],
    }
    for r in rows:
        if r["run"] == "pgbench":
            continue
        out["service_over_pgbench"].append(
            {
                "run": r["run"],
                "clients": r["clients"],
                "vs_ceiling": r["claims_per_s"] / best["claims_per_s"] if best else None,
                "vs_pgbench_same_connections": (
                    r["claims_per_s"] / same_conns["claims_per_s"] if same_conns else None
                ),
            }
        )
    direct = {r["clients"]: r for r in rows if r["run"] == "direct"}
    for r in rows:
        d = direct.get(r["clients"])
        if r["run"] == "proxied" and d and d["claims_per_s"] > 0:
            out["proxied_over_direct"].append(
                {
                    "clients": r["clients"],
                    "throughput": r["claims_per_s"] / d["claims_per_s"],
                    "p50": (r["p50_ms"] / d["p50_ms"]) if r["p50_ms"] and d["p50_ms"] else None,
                    "p99": (r["p99_ms"] / d["p99_ms"]) if r["p99_ms"] and d["p99_ms"] else None,
                }
            )
    return out


def print_ratios(r: dict[str, Any], pool_size: int) -> None:
    print()
    if r["pgbench_ceiling_claims_per_s"]:
        print(
            f"ceiling: pgbench {r['pgbench_ceiling_claims_per_s']:.0f} claims/s "
            f"with {r['pgbench_ceiling_clients']} clients"
        )
    for s in r["service_over_pgbench"]:
        same = s["vs_pgbench_same_connections"]
        print(
            f"  {s['run']:8} {s['clients']:>4} clients: service/pgbench = "
            f"{_fmt(s['vs_ceiling'], '.3f')} of the ceiling"
            + (f", {same:.3f} of pgbench with {pool_size} connections" if same else "")
        )
    for p in r["proxied_over_direct"]:
        print(
            f"  proxied/direct {p['clients']:>4} clients: throughput {p['throughput']:.3f}, "
            f"p50 {_fmt(p['p50'], '.3f')}, p99 {_fmt(p['p99'], '.3f')}"
        )


def _int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.claim_throughput",
        description="Claim throughput: pgbench ceiling, service direct, service via Toxiproxy.",
    )
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds before each HTTP run"
    )
    parser.add_argument(
        "--clients",
        type=_int_list,
        default=[64],
        help="concurrent HTTP clients, comma-separated (default 64)",
    )
    parser.add_argument(
        "--pgbench-clients",
        type=_int_list,
        default=[4, 16],
        help="pgbench client counts, comma-separated (default 4,16)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="DB_POOL_MIN_SIZE and DB_POOL_MAX_SIZE of the service (default: its own, 4)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other service setting (environment variable), repeatable",
    )
    parser.add_argument("--skip-pgbench", action="store_true", help="only the HTTP runs")
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "claim_throughput.json", help="JSON output"
    )
    return parser


def _service_env(args: argparse.Namespace) -> dict[str, str]:
    env: dict[str, str] = {}
    if args.pool_size is not None:
        env["DB_POOL_MIN_SIZE"] = env["DB_POOL_MAX_SIZE"] = str(args.pool_size)
    for item in args.setting:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--setting expects NAME=VALUE, got {item!r}")
        env[name.upper()] = value
    return env


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = _service_env(args)
    pool_size = int(env.get("DB_POOL_MAX_SIZE", "4"))
    cpus = os.cpu_count() or 1
    note = CPU_NOTE.format(cpus=cpus)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    machine = env_note()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", flush=True)

    cluster = PostgresCluster()
    try:
        say("starting PostgreSQL")
        cluster.start()
        _admin(cluster, schema_sql())
        if not args.skip_pgbench:
            for n in args.pgbench_clients:
                _settle(cluster)
                say(f"pgbench: {n} clients for {args.seconds} s")
                rows.append(run_pgbench(cluster, clients=n, seconds=args.seconds))
        with toxiproxy_in_front(cluster) as (proxied_url, toxiproxy):
            for label, url in (("direct", cluster.url), ("proxied", proxied_url)):
                service = ServiceProcess(database_url=url, env=env)
                try:
                    say(f"service {label}: starting")
                    service.start()
                    for n in args.clients:
                        _settle(cluster)
                        say(f"service {label}: {n} clients, {args.warmup:g} s + {args.seconds} s")
                        rows.append(
                            run_service(
                                label,
                                service,
                                cluster,
                                clients=n,
                                seconds=args.seconds,
                                warmup=args.warmup,
                                connections=pool_size,
                                toxiproxy_pid=toxiproxy.pid if label == "proxied" else None,
                            )
                        )
                finally:
                    service.stop()
    finally:
        cluster.stop()

    for row in rows:
        row["cpu_ms_per_claim"] = _cpu_per_claim(row)
        row["loadgen_bound"] = row["cpu_percent"].get("loadgen", 0.0) >= LOADGEN_BOUND
        row["cpu_total_percent"] = sum(v for k, v in row["cpu_percent"].items() if k != "others")
        row["saturated"] = row["cpu_total_percent"] >= SATURATED * cpus
    print()
    print_table(rows)
    rat = ratios(rows, pool_size)
    print_ratios(rat, pool_size)
    lost = [r for r in rows if r["run"] != "pgbench" and r["db_claims"] != r["acknowledged_total"]]
    for r in lost:
        print(
            f"WARNING: {r['run']} {r['clients']} clients: {r['acknowledged_total']} claims "
            f"answered 200 but {r['db_claims']} in the database"
        )
    print(f"\nnote: {note}")
    payload = {
        "benchmark": "claim_throughput",
        "started_at": started_at,
        "machine": machine,
        "note": note,
        "options": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "clients": args.clients,
            "pgbench_clients": [] if args.skip_pgbench else args.pgbench_clients,
            "service_settings": env,
            "pool_size": pool_size,
        },
        "pgbench_script": pgbench_script(),
        "runs": rows,
        "ratios": rat,
        "wall_seconds": time.monotonic() - started,
    }
    write_json(args.json, payload)
    print(f"JSON: {args.json}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
