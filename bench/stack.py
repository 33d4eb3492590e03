"""The pieces of a benchmark run that start processes or touch the database: Toxiproxy in
front of a throwaway cluster, database checks between runs, pgbench with the service's
claim SQL, and the file-descriptor limit thousands of connections need."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from app.repository import CLAIM_SQL
from bench.common import HUGE_STOCK, CpuMeter, process_tree
from chaos.core.history import percentile
from chaos.infra.postgres import PostgresAdmin, PostgresCluster
from chaos.infra.processes import as_unprivileged
from chaos.infra.stack import PROXY_NAME, start_toxiproxy, with_address
from chaos.targets.coupons import CouponState, read_state

__all__ = [
    "Toxiproxy",
    "admin_sql",
    "conserved",
    "coupon_state",
    "pgbench_script",
    "raise_nofile_limit",
    "run_pgbench",
    "settle",
    "toxiproxy_in_front",
]


def admin_sql(cluster: PostgresCluster, statement: str) -> None:
    """Run one statement (or script) on the cluster in autocommit mode."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(statement.encode())


def settle(cluster: PostgresCluster) -> None:
    """Even the ground between runs: vacuum the hot rows' dead versions, checkpoint."""
    admin_sql(cluster, "VACUUM ANALYZE")
    admin_sql(cluster, "CHECKPOINT")


def coupon_state(cluster: PostgresCluster, coupon: str) -> CouponState:
    """The coupon's row and its claims (`chaos.targets.coupons.read_state`), read on a
    direct connection."""
    with PostgresAdmin(cluster.url, application_name="coupon-bench") as admin:
        state = read_state(admin, [coupon])
    if coupon not in state.amounts:
        raise RuntimeError(f"coupon {coupon!r} is not in the database")
    return state


def conserved(state: CouponState, coupon: str) -> bool:
    """Stock taken equals claims written."""
    return state.amounts[coupon] - state.remaining[coupon] == len(state.claims)


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE of this process (and so of every child started after) to
    `wanted` when the hard limit allows it, or root may lift it; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard  # not root: as far as the hard limit goes
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


@dataclass(frozen=True)
class Toxiproxy:
    """A running Toxiproxy server with one proxy to the cluster."""

    api_url: str
    proxy: str
    database_url: str
    pid: int | None


@contextmanager
def toxiproxy_in_front(cluster: PostgresCluster) -> Iterator[Toxiproxy]:
    """A Toxiproxy server with a proxy (no toxic) to the cluster, built as
    chaos.infra.stack.LocalStack.start builds it; stopped and its directory removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-toxiproxy-"))
    try:
        server, url, ports = start_toxiproxy(
            {PROXY_NAME: f"{cluster.host}:{cluster.port}"}, log_path=workdir / "toxiproxy.log"
        )
        try:
            yield Toxiproxy(
                api_url=url,
                proxy=PROXY_NAME,
                database_url=with_address(cluster.url, "127.0.0.1", ports[PROXY_NAME]),
                pid=server.pid,
            )
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def pgbench_script() -> str:
    """The service's claim statement with pgbench variables.

    `:coupon` comes from `-D coupon=...`; the user id is unique per transaction without
    random collisions (a duplicate would abort the pgbench client on the unique index):
    a per-client counter `n` (pgbench variables live for the client's whole run) offset
    by `:client_id`. Both go to the server as parameters of the prepared statement.
    """
    statement = CLAIM_SQL.replace("%(coupon)s", ":coupon").replace("%(user)s", ":uid")
    if "%(" in statement:
        raise RuntimeError(f"unexpected placeholder left in the claim SQL: {statement}")
    return (
        "\\set n :n + 1\n"
        "\\set uid :client_id * 1000000000000 + :n\n" + statement.strip().rstrip(";") + ";\n"
    )


def run_pgbench(cluster: PostgresCluster, *, clients: int, seconds: int) -> dict[str, Any]:
    """pgbench (`--protocol=prepared`) with the claim script on a fresh hot coupon:
    claims/s, latency from its per-transaction log, CPU of PostgreSQL and pgbench."""
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
    claims = int(field(r"number of transactions actually processed: (\d+)") or 0)
    return {
        "run": "pgbench",
        "connections": clients,
        "seconds": seconds,
        "claims": claims,
        "failed": int(field(r"number of failed transactions: (\d+)") or 0),
        "claims_per_s": field(r"tps = ([0-9.]+) \(without initial connection time\)") or 0.0,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "db_claims": len(coupon_state(cluster, coupon).claims),
        "cpu_seconds": cpu,
        "wall_seconds": meter.wall,
    }
