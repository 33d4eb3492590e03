"""The flash-sale benchmark: throughput with a C load generator, bursts, sustained overload.

One command starts everything it measures (a throwaway PostgreSQL cluster, a Toxiproxy
server, the service as `python -m app` with default settings) and stops it all again,
also on failure or Ctrl-C:

throughput  the hot coupon (one coupon, an enormous stock, every request a new user),
            driven by wrk (C, closed loop, `--connections` keep-alive connections):
            straight to PostgreSQL and through Toxiproxy with no toxic, beside pgbench
            running the service's own claim SQL (`CLAIM_SQL`, prepared), the database's
            ceiling. Claims/s, p50/p99, the ratios service/pgbench and proxied/direct,
            and CPU milliseconds per claim of the service, PostgreSQL and Toxiproxy.
burst       N users press the button together: N connections are opened first (and
            accepted by the service), then one claim is written on each in one tight
            loop (bench.rawload). One coupon with stock 50, each burst on a freshly
            started service: cold, and after `--burst-warmups` sequential claims (the
            admission estimate learns the time per claim from traffic, so a first burst
            and a later one can differ), or with `--one-service` all bursts of a series
            one after another on the same service. `--hogs N` runs N CPU-bound processes
            beside the service while the bursts run (a loaded box). Answers by status,
            latency p50/p99/max, time to the first answer and to drain (first request
            written to last answer), and the database afterwards (exactly 50 claims,
            nothing left, 200s = claims). The targets: every burst sells exactly 50,
            answers every user, 0 x 503, and leaves the database exact.
overload    arrivals well above capacity for several seconds. The service goes through
            Toxiproxy with a latency toxic on the database link (`--overload-latency-ms`),
            which lowers its capacity the way a slow database does (each claim holds a
            pool connection for a round trip). Its capacity is measured first (wrk, closed
            loop), then an open-loop generator sends `--overload-factor` times that rate
            for `--overload-seconds`, each request on a connection opened beforehand,
            whether or not earlier ones were answered. Why a toxic and not just more
            load: the machine's 2 cores are shared by the generator and the service, so
            overloading the bare service would measure the generator's fight for CPU;
            with the toxic, the generator needs a small fraction of a core for 4x the
            capacity. Share served, 503s and their latency against the acquire timeout.

Usage::

    .venv/bin/python -m bench.flash_sale                       # all three parts
    .venv/bin/python -m bench.flash_sale --parts burst --bursts 500,2000 --burst-warmups 0
    .venv/bin/python -m bench.flash_sale --parts burst --bursts 5000 --hogs 2
    .venv/bin/python -m bench.flash_sale --parts throughput --seconds 10 --connections 64

The machine's load average is recorded before each part; figures taken while other
processes compete for the cores are lower than the service can do (CPU per claim is not).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.repository import CLAIM_SQL, schema_sql
from app.settings import Settings
from bench.common import (
    HUGE_STOCK,
    RESULTS_DIR,
    CpuMeter,
    create_coupon,
    env_note,
    process_tree,
    write_json,
)
from bench.rawload import Answer, HttpConnections, claim_request
from bench.stack import (
    Toxiproxy,
    admin_sql,
    conserved,
    coupon_state,
    raise_nofile_limit,
    run_pgbench,
    settle,
    toxiproxy_in_front,
)
from bench.wrk import run_wrk
from chaos.core.history import percentile
from chaos.errors import WaitTimeout
from chaos.infra.postgres import PostgresCluster
from chaos.infra.service import ServiceProcess
from chaos.infra.stack import find_toxiproxy_server
from chaos.infra.toxiproxy import Latency, ToxiproxyClient
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS

__all__ = ["build_parser", "main"]

PARTS = ("throughput", "burst", "overload")
BURST_STOCK = 50
"""Stock of the burst coupon in a flash sale."""

THROUGHPUT_TARGET = 0.45
"""Hot-coupon claims/s of the service (direct) over pgbench's ceiling, the target."""

OUT_OF_STOCK = b"coupon out of stock"
"""The 400 answer of a claim on a sold-out coupon (app/errors.py)."""

FD_HEADROOM = 4096
"""File descriptors on top of the largest burst (pool, logs, wrk, the interpreter)."""

ACCEPT_TIMEOUT = 30.0
"""How long a burst waits for the service to accept its connections before it goes."""

OVERLOAD_NOFILE = 65536
"""RLIMIT_NOFILE asked for when the overload part runs (its connections follow its rate)."""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class _GivenSettings(Settings):
    """The service's settings from the given values and defaults only: ServiceProcess
    hides the caller's environment from the service, so must we."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class Run:
    """The run's clock, the service's settings and the progress log."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.started = time.monotonic()
        self.nofile = 0
        self.settings = dict(settings)
        self.service_settings = _GivenSettings.model_validate(
            {k.lower(): v for k, v in self.settings.items()}
        )

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {msg}", flush=True)

    @contextmanager
    def service(self, database_url: str) -> Iterator[ServiceProcess]:
        svc = ServiceProcess(
            database_url=database_url, env=self.settings, settings_names=COUPONS.settings_names
        )
        svc.start()
        self.say(f"service on port {svc.port} (pid {svc.pid})")
        try:
            yield svc
        finally:
            svc.stop()


# -- part 1: throughput -----------------------------------------------------------------


def measure_wrk(
    run: Run,
    label: str,
    svc: ServiceProcess,
    cluster: PostgresCluster,
    args: argparse.Namespace,
    toxiproxy_pid: int | None,
) -> dict[str, Any]:
    """A wrk warm-up, then the measured wrk run with the CPU of every process."""
    coupon = f"bench-{label}"
    create_coupon(svc.url, coupon, HUGE_STOCK)
    wrk_args = {
        "coupon": coupon,
        "connections": args.connections,
        "threads": args.threads,
        "timeout": run.service_settings.request_deadline + 5,
    }
    if args.warmup > 0:
        run_wrk(svc.url, prefix=f"{label}-warm", seconds=args.warmup, **wrk_args)
    settle(cluster)
    groups: dict[str, Callable[[], list[psutil.Process]]] = {
        "service": lambda: process_tree(svc.pid),
        "postgres": lambda: process_tree(cluster.postmaster_pid()),
    }
    if toxiproxy_pid is not None:
        groups["toxiproxy"] = lambda: process_tree(toxiproxy_pid)
    meter = CpuMeter(groups)
    load = _load()
    meter.start()
    row = run_wrk(svc.url, prefix=label, seconds=args.seconds, **wrk_args)
    cpu = meter.stop()
    cpu["wrk"] = row.pop("wrk_cpu_seconds")
    cpu["others"] = max(0.0, cpu["others"] - cpu["wrk"])  # wrk is ours, not somebody else's
    return {
        "run": label,
        "connections": args.connections,
        "load_1m_before": load,
        **row,
        "cpu_seconds": cpu,
        "wall_seconds": meter.wall,
    }


def part_throughput(
    run: Run, cluster: PostgresCluster, tp: Toxiproxy, args: argparse.Namespace
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in args.pgbench_clients:
        settle(cluster)
        run.say(f"pgbench: {n} clients, {args.seconds} s (load {_load()})")
        row = run_pgbench(cluster, clients=n, seconds=args.seconds)
        row["load_1m_before"] = _load()
        rows.append(row)
    for label, url, pid in (("direct", cluster.url, None), ("proxied", tp.database_url, tp.pid)):
        with run.service(url) as svc:
            run.say(
                f"service {label}: wrk {args.connections} connections, "
                f"{args.warmup:g} s + {args.seconds} s (load {_load()})"
            )
            rows.append(measure_wrk(run, label, svc, cluster, args, pid))
    for row in rows:
        claims = row["claims"]
        row["cpu_ms_per_claim"] = {
            k: 1000 * v / claims for k, v in row["cpu_seconds"].items() if claims and k != "others"
        }
        row["cpu_percent"] = {
            k: 100 * v / row["wall_seconds"] for k, v in row["cpu_seconds"].items()
        }
    return {"rows": rows, "ratios": throughput_ratios(rows, run.service_settings.db_pool_max_size)}


def throughput_ratios(rows: Sequence[Mapping[str, Any]], pool_size: int) -> dict[str, Any]:
    """service direct / pgbench (its best, and with as many connections as the pool), and
    proxied / direct, for claims/s and latency."""
    by = {r["run"]: r for r in rows if r["run"] != "pgbench"}
    bench = [r for r in rows if r["run"] == "pgbench"]
    best = max(bench, key=lambda r: r["claims_per_s"], default=None)
    same = next((r for r in bench if r["connections"] == pool_size), None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    direct, proxied = by.get("direct"), by.get("proxied")
    out: dict[str, Any] = {
        "pgbench_ceiling": best
        and {"clients": best["connections"], "claims_per_s": best["claims_per_s"]},
    }
    if direct:
        out["direct_over_pgbench_ceiling"] = ratio(
            direct["claims_per_s"], best["claims_per_s"] if best else None
        )
        out["direct_over_pgbench_pool_size"] = ratio(
            direct["claims_per_s"], same["claims_per_s"] if same else None
        )
    if direct and direct["cpu_ms_per_claim"].get("service"):
        # The service is one process: with a core to itself it would do this many. A
        # contention-proof figure when other processes share the cores.
        out["direct_one_core_claims_per_s"] = 1000 / direct["cpu_ms_per_claim"]["service"]
    if direct and proxied:
        out["proxied_over_direct"] = {
            k: ratio(proxied[k], direct[k]) for k in ("claims_per_s", "p50_ms", "p99_ms")
        }
    return out


def print_throughput(res: Mapping[str, Any], pool_size: int) -> None:
    print()
    head = (
        f"{'run':8} {'conns':>5} {'load':>5} {'others':>6} {'claims/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7}  CPU ms per claim (service / PostgreSQL / Toxiproxy / generator), "
        "other answers"
    )
    print(
        "Throughput: the hot coupon (every claim a new user); `others`: CPU of processes "
        "outside the benchmark during the run, % of one core"
    )
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        per = r["cpu_ms_per_claim"]
        cpu = (
            " / ".join(_fmt(per.get(k), ".3f") for k in ("service", "postgres", "toxiproxy"))
            + f" / {_fmt(per.get('wrk', per.get('pgbench')), '.3f')}"
        )
        other = {k: v for k, v in r.get("statuses", {}).items() if k != "200"}
        other.update(r.get("socket_errors", {}))
        if r.get("failed"):
            other["failed"] = r["failed"]
        print(
            f"{r['run']:8} {r['connections']:>5} {r['load_1m_before']:>5.2f} "
            f"{r['cpu_percent'].get('others', 0.0):>5.0f}% {r['claims_per_s']:>9.0f} "
            f"{_fmt(r['p50_ms'], '.2f'):>7} "
            f"{_fmt(r['p99_ms'], '.2f'):>7}  {cpu}  {other or ''}"
        )
    rat = res["ratios"]
    ceiling = rat.get("pgbench_ceiling")
    if ceiling:
        met = (rat.get("direct_over_pgbench_ceiling") or 0.0) >= THROUGHPUT_TARGET
        print(
            f"ratios: service direct / pgbench ceiling ({ceiling['clients']} clients) = "
            f"{_fmt(rat.get('direct_over_pgbench_ceiling'), '.3f')}; "
            f"/ pgbench with {pool_size} clients (the pool size) = "
            f"{_fmt(rat.get('direct_over_pgbench_pool_size'), '.3f')}; target "
            f">= {THROUGHPUT_TARGET} of the ceiling: {'met' if met else 'MISSED'}"
        )
    if rat.get("direct_one_core_claims_per_s"):
        print(
            "service direct with a core to itself (1 core / its CPU per claim): "
            f"{rat['direct_one_core_claims_per_s']:.0f} claims/s"
        )
    pod = rat.get("proxied_over_direct")
    if pod:
        print(
            f"ratios: through Toxiproxy / direct: claims/s {_fmt(pod['claims_per_s'], '.3f')}, "
            f"p50 {_fmt(pod['p50_ms'], '.3f')}, p99 {_fmt(pod['p99_ms'], '.3f')}"
        )


# -- part 2: bursts ---------------------------------------------------------------------


def classify(answer: Answer) -> str:
    """200, `400 out of stock`, 503, or the status / failure as text."""
    if answer.status == 400 and OUT_OF_STOCK in answer.body:
        return "400 out of stock"
    return str(answer.status)


def latency_summary(answers: Sequence[Answer]) -> dict[str, float | None]:
    lat = [a.latency for a in answers]
    return {
        "p50_ms": _ms(percentile(lat, 50)),
        "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(max(lat)) if lat else None,
    }


def _accepted(svc: ServiceProcess) -> int:
    """Client connections the service process holds (accepted, not yet closed)."""
    assert svc.pid is not None
    return sum(
        1
        for c in psutil.Process(svc.pid).net_connections(kind="tcp4")
        if c.laddr and c.laddr.port == svc.port and c.status == psutil.CONN_ESTABLISHED
    )


def run_burst(
    run: Run, svc: ServiceProcess, cluster: PostgresCluster, users: int, answer_timeout: float
) -> dict[str, Any]:
    """`users` connections opened and accepted, then one claim written on each at once."""
    coupon = f"bench-burst-{users}-{time.monotonic_ns()}"
    create_coupon(svc.url, coupon, BURST_STOCK)
    host, port = svc.host, svc.port
    requests = [claim_request(host, port, f"burst-{users}-{i}", coupon) for i in range(users)]
    assert svc.pid is not None
    # Inherited from this process (raised in main); recorded so a short row can be told.
    service_nofile = psutil.Process(svc.pid).rlimit(psutil.RLIMIT_NOFILE)[0]
    conns = HttpConnections(host, port)
    me = psutil.Process()
    try:
        opening = time.monotonic()
        conns.open(users, timeout=60.0)
        # "Opened" means the service has accepted them, not only that the kernel did. A
        # service that caps or times out connections may never hold them all: the burst
        # then goes ahead and the row says how many it held.
        with suppress(WaitTimeout):
            wait_for(
                lambda: _accepted(svc) >= users,
                timeout=ACCEPT_TIMEOUT,
                what=f"the service to accept {users} connections",
                interval=0.2,
            )
        accepted = _accepted(svc)
        open_seconds = time.monotonic() - opening
        load = _load()
        meter = CpuMeter(
            {
                "service": lambda: process_tree(svc.pid),
                "postgres": lambda: process_tree(cluster.postmaster_pid()),
                "generator": lambda: [me],
            }
        )
        meter.start()
        written = conns.send_all(requests)
        conns.wait_answers(answer_timeout)
        cpu = meter.stop()
    finally:
        conns.close()
    answers = conns.answers
    first = min(a.sent for a in answers)
    counts = Counter(classify(a) for a in answers)
    ok = counts.pop("200", 0)
    # 504s and failures without an answer may or may not have written their claim.
    unsure = sum(1 for a in answers if a.status not in (200, 400, 503))
    state = coupon_state(cluster, coupon)
    claimed, remaining = len(state.claims), state.remaining[coupon]
    # The next burst starts from a quiet service: it has seen every reset.
    wait_for(
        lambda: _accepted(svc) == 0,
        timeout=30.0,
        what="the service to close the burst's connections",
        interval=0.2,
    )
    return {
        "users": users,
        "written": written,
        "accepted_before_release": accepted,
        "service_nofile": service_nofile,
        "open_seconds": open_seconds,
        "load_1m_before": load,
        "ok": ok,
        "out_of_stock": counts.pop("400 out of stock", 0),
        "unavailable": counts.pop("503", 0),
        "other": dict(counts),
        **latency_summary(answers),
        "release_ms": 1000 * (max(a.sent for a in answers) - first),
        "first_answer_ms": 1000 * (min(a.done for a in answers) - first),
        "drain_ms": 1000 * (max(a.done for a in answers) - first),
        "db": {"claims": claimed, "remaining": remaining},
        # Conservation, and every 200 is a claim (and no claim nobody may have made).
        "db_consistent": conserved(state, coupon) and ok <= claimed <= ok + unsure,
        "sold_out": claimed == BURST_STOCK and remaining == 0,
        "cpu_seconds": cpu,
    }


def warm_up(svc: ServiceProcess, claims: int) -> None:
    """`claims` claims one after another on a coupon of their own: the traffic a service
    has seen before a sale opens (its admission has measured the time per claim)."""
    if claims <= 0:
        return
    coupon = f"bench-warm-{time.monotonic_ns()}"
    create_coupon(svc.url, coupon, HUGE_STOCK)
    with httpx.Client(base_url=svc.url, timeout=10.0) as client:
        for i in range(claims):
            resp = client.post(
                "/api/coupons/claim", json={"user_id": f"w{i}", "coupon_name": coupon}
            )
            if resp.status_code != 200:
                raise RuntimeError(f"warm-up claim answered {resp.status_code}: {resp.text}")


@contextmanager
def cpu_hogs(count: int) -> Iterator[list[int]]:
    """`count` CPU-bound processes (busy loops), stopped on exit; their pids."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def part_burst(run: Run, cluster: PostgresCluster, args: argparse.Namespace) -> dict[str, Any]:
    """Each burst on a service of its own (what it does depends on what it has measured
    before): started fresh, then `warm-up` sequential claims, then the burst; with
    `--one-service`, one service per series and its bursts one after another."""
    rows = []
    answer_timeout = run.service_settings.request_deadline + 60.0

    def one(svc: ServiceProcess, warmup: int, users: int, earlier: int) -> None:
        run.say(
            f"burst: {users} users on stock {BURST_STOCK}, after {warmup} warm-up claims "
            f"and {earlier} earlier bursts, {args.hogs} CPU hogs (load {_load()})"
        )
        row = run_burst(run, svc, cluster, users, answer_timeout)
        rows.append({"warmup_claims": warmup, "earlier_bursts": earlier, **row})

    with cpu_hogs(args.hogs):
        for warmup in args.burst_warmups:
            if args.one_service:
                settle(cluster)
                with run.service(cluster.url) as svc:
                    warm_up(svc, warmup)
                    for k, users in enumerate(args.bursts):
                        one(svc, warmup, users, k)
                continue
            for users in args.bursts:
                settle(cluster)
                with run.service(cluster.url) as svc:
                    warm_up(svc, warmup)
                    one(svc, warmup, users, 0)
    return {"stock": BURST_STOCK, "hogs": args.hogs, "rows": rows}


def burst_target_met(row: Mapping[str, Any]) -> bool:
    """The target for a burst: exactly the stock sold, every user answered (200
    or 400 out of stock), no 503, the database exact."""
    return bool(
        row["ok"] == BURST_STOCK
        and row["unavailable"] == 0
        and not row["other"]
        and row["ok"] + row["out_of_stock"] == row["users"]
        and row["sold_out"]
        and row["db_consistent"]
    )


def print_burst(res: Mapping[str, Any]) -> None:
    print()
    head = (
        f"{'warm':>4} {'earlier':>7} {'users':>6} {'load':>5} {'200':>4} {'400 oos':>7} "
        f"{'503':>6} {'other':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'1st ms':>7} {'drain ms':>8} "
        f"{'release':>7} {'svc CPU':>7} {'others':>6} {'target':>6}  database"
    )
    print(
        f"Bursts: N users at once on one coupon with stock {res['stock']}, after `warm` "
        "sequential claims and `earlier` bursts on the same service, "
        f"{res['hogs']} CPU-bound processes beside it; CPU of the service and of processes "
        "outside the benchmark while it drained, % of one core; target: 50 x 200, 0 x 503, "
        "everyone answered, database exact"
    )
    print(head)
    print("-" * len(head))
    for r in res["rows"]:
        other = sum(r["other"].values())
        wall = r["drain_ms"] / 1000
        svc_share = 100 * r["cpu_seconds"]["service"] / wall if wall > 0 else 0.0
        others = 100 * r["cpu_seconds"]["others"] / wall if wall > 0 else 0.0
        db = f"{r['db']['claims']} claims, {r['db']['remaining']} left"
        db += "" if r["sold_out"] else " NOT SOLD OUT"
        db += "" if r["db_consistent"] else " INCONSISTENT"
        if r["accepted_before_release"] < r["users"]:
            db += f"  (service held {r['accepted_before_release']} connections at release)"
        print(
            f"{r['warmup_claims']:>4} {r.get('earlier_bursts', 0):>7} {r['users']:>6} "
            f"{r['load_1m_before']:>5.2f} {r['ok']:>4} "
            f"{r['out_of_stock']:>7} "
            f"{r['unavailable']:>6} {other:>6} {_fmt(r['p50_ms']):>7} {_fmt(r['p99_ms']):>7} "
            f"{_fmt(r['max_ms']):>7} {r['first_answer_ms']:>7.0f} {r['drain_ms']:>8.0f} "
            f"{r['release_ms']:>5.0f}ms {svc_share:>6.0f}% {others:>5.0f}% "
            f"{'met' if burst_target_met(r) else 'MISSED':>6}  {db}"
            + (f"  other: {r['other']}" if other else "")
        )


# -- part 3: sustained overload ---------------------------------------------------------


def open_loop(
    conns: HttpConnections,
    make_request: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
) -> int:
    """Write request i at start + i/rate for `seconds`, whatever came back; how many were
    due while no connection was idle (written late, as soon as one was)."""
    clock = conns.clock
    start = clock()
    total = int(rate * seconds)
    late = 0
    i = 0
    while i < total:
        now = clock()
        while i < total and start + i / rate <= now:
            if not conns.send(make_request(i), start + i / rate):
                late += 1
                break
            i += 1
        next_due = start + i / rate
        conns.poll(max(0.0, min(next_due - clock(), 0.05)))
    return late


def part_overload(
    run: Run, cluster: PostgresCluster, tp: Toxiproxy, args: argparse.Namespace
) -> dict[str, Any]:
    acquire_timeout = run.service_settings.db_pool_acquire_timeout
    deadline = run.service_settings.request_deadline
    toxic = Latency(latency_ms=args.overload_latency_ms, name="bench-overload-latency")
    with run.service(tp.database_url) as svc, ToxiproxyClient(tp.api_url) as toxiproxy:
        coupon = "bench-overload"
        create_coupon(svc.url, "bench-overload-capacity", HUGE_STOCK)
        create_coupon(svc.url, coupon, HUGE_STOCK)
        with toxiproxy.toxic(tp.proxy, toxic):
            run.say(
                f"overload: capacity with a {args.overload_latency_ms} ms latency toxic "
                f"(wrk, 64 connections, 3 s; load {_load()})"
            )
            capacity = run_wrk(
                svc.url,
                coupon="bench-overload-capacity",
                prefix="capacity",
                connections=64,
                threads=args.threads,
                seconds=3,
                timeout=deadline + 5,
            )
            rate = args.overload_factor * capacity["claims_per_s"]
            # Enough connections that one is idle whenever a request is due: every
            # answer comes within the request deadline (+ slack).
            pool = int(rate * (deadline + 1.0)) + 64
            if pool + FD_HEADROOM > run.nofile:
                raise SystemExit(
                    f"overload: {pool} connections needed, RLIMIT_NOFILE is {run.nofile}: "
                    "lower --overload-factor or raise --overload-latency-ms"
                )
            conns = HttpConnections(svc.host, svc.port)
            me = psutil.Process()
            try:
                conns.open(pool, timeout=60.0)
                with suppress(WaitTimeout):  # a connection cap: the row says so
                    wait_for(
                        lambda: _accepted(svc) >= pool,
                        timeout=ACCEPT_TIMEOUT,
                        what=f"the service to accept {pool} connections",
                        interval=0.2,
                    )
                accepted = _accepted(svc)
                load = _load()
                run.say(
                    f"overload: {rate:.0f} arrivals/s ({args.overload_factor:g}x capacity "
                    f"{capacity['claims_per_s']:.0f}/s) for {args.overload_seconds:g} s, "
                    f"{pool} connections (load {load})"
                )
                meter = CpuMeter(
                    {
                        "service": lambda: process_tree(svc.pid),
                        "postgres": lambda: process_tree(cluster.postmaster_pid()),
                        "toxiproxy": lambda: process_tree(tp.pid),
                        "generator": lambda: [me],
                    }
                )
                meter.start()
                late = open_loop(
                    conns,
                    lambda i: claim_request(svc.host, svc.port, f"over-{i}", coupon),
                    rate=rate,
                    seconds=args.overload_seconds,
                )
                conns.wait_answers(deadline + 30.0)
                cpu = meter.stop()
            finally:
                conns.close()
        answers = conns.answers
    counts = Counter(classify(a) for a in answers)
    refused = [a for a in answers if a.status == 503]
    ok = counts.get("200", 0)
    state = coupon_state(cluster, coupon)
    claimed = len(state.claims)
    unsure = sum(1 for a in answers if a.status not in (200, 400, 503))
    lag = [a.sent - a.due for a in answers]
    return {
        "latency_toxic_ms": args.overload_latency_ms,
        "capacity_claims_per_s": capacity["claims_per_s"],
        "arrival_per_s": rate,
        "factor": args.overload_factor,
        "seconds": args.overload_seconds,
        "connections": pool,
        "accepted_before_start": accepted,
        "load_1m_before": load,
        "sent": len(answers),
        "statuses": dict(counts),
        "served_share": ok / len(answers) if answers else None,
        "served_per_s": ok / args.overload_seconds,
        "ok_latency": latency_summary([a for a in answers if a.status == 200]),
        "unavailable": len(refused),
        "unavailable_latency": latency_summary(refused),
        "unavailable_over_acquire_timeout": sum(1 for a in refused if a.latency > acquire_timeout),
        # Refused on arrival (well before the acquire timeout) rather than after waiting.
        "unavailable_at_once": sum(1 for a in refused if a.latency < acquire_timeout / 2),
        "acquire_timeout_ms": acquire_timeout * 1000,
        "request_deadline_ms": deadline * 1000,
        "db_claims": claimed,
        # Conservation, every 200 is a claim, and no claim nobody may have made.
        "db_ok": conserved(state, coupon) and ok <= claimed <= ok + unsure,
        "generator_late": late,
        "generator_lag_p99_ms": _ms(percentile(lag, 99)),
        "cpu_seconds": cpu,
        "wall_seconds": meter.wall,
    }


def print_overload(r: Mapping[str, Any]) -> None:
    print()
    print(
        f"Sustained overload: {r['arrival_per_s']:.0f} arrivals/s for {r['seconds']:g} s "
        f"({r['factor']:g}x the capacity of {r['capacity_claims_per_s']:.0f} claims/s with a "
        f"{r['latency_toxic_ms']} ms latency toxic; load {r['load_1m_before']:.2f})"
    )
    u, ok = r["unavailable_latency"], r["ok_latency"]
    print(f"  sent {r['sent']}, answers {r['statuses']}")
    print(
        f"  served (200) {_fmt(100 * (r['served_share'] or 0))}% = {r['served_per_s']:.0f}/s, "
        f"latency p50 {_fmt(ok['p50_ms'])} ms, p99 {_fmt(ok['p99_ms'])} ms"
    )
    print(
        f"  503: {r['unavailable']}, latency p50 {_fmt(u['p50_ms'])} ms, p99 "
        f"{_fmt(u['p99_ms'])} ms, max {_fmt(u['max_ms'])} ms; acquire timeout "
        f"{r['acquire_timeout_ms']:.0f} ms ({r['unavailable_over_acquire_timeout']} above it, "
        f"{r['unavailable_at_once']} under half of it)"
    )
    print(
        f"  database: {r['db_claims']} claims for {r['statuses'].get('200', 0)} answered 200 "
        f"({'consistent' if r['db_ok'] else 'INCONSISTENT'}); generator lag p99 "
        f"{_fmt(r['generator_lag_p99_ms'])} ms, {r['generator_late']} late"
    )
    cpu = r["cpu_seconds"]
    print(
        "  CPU % of one core: "
        + " ".join(f"{k}={100 * v / r['wall_seconds']:.0f}" for k, v in cpu.items())
    )


# -- entry point ------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _count_list(text: str) -> list[int]:
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


def _parts(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = set(values) - set(PARTS)
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return [p for p in PARTS if p in values]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flash_sale",
        description="Flash-sale figures: wrk throughput beside pgbench, bursts, overload.",
    )
    parser.add_argument(
        "--parts", type=_parts, default=list(PARTS), help="comma-separated: " + ",".join(PARTS)
    )
    group = parser.add_argument_group("throughput")
    group.add_argument("--seconds", type=int, default=8, help="measured seconds per run")
    group.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds")
    group.add_argument("--connections", type=int, default=64, help="wrk connections")
    group.add_argument("--threads", type=int, default=2, help="wrk threads")
    group.add_argument(
        "--pgbench-clients", type=_int_list, default=[4, 16], help="pgbench client counts"
    )
    group = parser.add_argument_group("burst")
    group.add_argument(
        "--bursts",
        type=_int_list,
        default=[5000, 10000, 15000],
        help="simultaneous users per burst, comma-separated",
    )
    group.add_argument(
        "--one-service",
        action="store_true",
        help="run a series' bursts one after another on one service (not a fresh one each)",
    )
    group.add_argument(
        "--hogs", type=int, default=0, help="CPU-bound processes beside the service (bursts)"
    )
    group.add_argument(
        "--burst-warmups",
        type=_count_list,
        default=[0],
        help="sequential claims before each burst, comma-separated (each a series)",
    )
    group = parser.add_argument_group("overload")
    group.add_argument("--overload-latency-ms", type=int, default=20, help="latency toxic")
    group.add_argument(
        "--overload-factor", type=float, default=4.0, help="arrival rate / measured capacity"
    )
    group.add_argument("--overload-seconds", type=float, default=6.0, help="arrival period")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting (environment variable) for every service, repeatable",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "flash_sale.json", help="JSON output"
    )
    return parser


def _settings(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--setting expects NAME=VALUE, got {item!r}")
        env[name.upper()] = value
    return env


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Interruptible even when started in the background (which ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run = Run(_settings(args.setting))
    pool_size = run.service_settings.db_pool_max_size
    biggest = max(args.bursts) if "burst" in args.parts else 0
    # As many as we may have: the overload part opens as many connections as its rate
    # needs (it stops with a message when that is beyond the limit).
    run.nofile = raise_nofile_limit(max(biggest + FD_HEADROOM, OVERLOAD_NOFILE))
    if run.nofile < biggest + FD_HEADROOM:
        raise SystemExit(f"RLIMIT_NOFILE is {run.nofile}; bursts of {biggest} need more")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = env_note()
    results: dict[str, Any] = {}
    if "throughput" in args.parts or "overload" in args.parts:
        find_toxiproxy_server()  # fail before minutes of bursts, not after
    print(f"machine: {machine['cpus']} CPUs; service settings: {run.settings or 'defaults'}")
    cluster = PostgresCluster()
    try:
        run.say(f"starting PostgreSQL (load {_load()})")
        cluster.start()
        run.say(f"PostgreSQL on port {cluster.port}, in {cluster.tmpdir}")
        admin_sql(cluster, schema_sql())
        if "burst" in args.parts:
            results["burst"] = part_burst(run, cluster, args)
            print_burst(results["burst"])
        if "throughput" in args.parts or "overload" in args.parts:
            with toxiproxy_in_front(cluster) as tp:
                run.say(f"Toxiproxy at {tp.api_url} (pid {tp.pid})")
                if "throughput" in args.parts:
                    results["throughput"] = part_throughput(run, cluster, tp, args)
                    print_throughput(results["throughput"], pool_size)
                if "overload" in args.parts:
                    results["overload"] = part_overload(run, cluster, tp, args)
                    print_overload(results["overload"])
    finally:
        cluster.stop()

    payload = {
        "benchmark": "flash_sale",
        "started_at": started_at,
        "machine": machine,
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "service_settings": run.settings,
        "pool_size": pool_size,
        "claim_sql": CLAIM_SQL.strip(),
        **results,
        "wall_seconds": time.monotonic() - run.started,
    }
    write_json(args.json, payload)
    print(f"\nJSON: {args.json} ({payload['wall_seconds']:.0f} s)")
    bad: list[object] = [
        f"{r['users']} users after {r['warmup_claims']} claims"
        for r in results.get("burst", {}).get("rows", [])
        if not (r["db_consistent"] and r["sold_out"])
    ]
    if results.get("overload") and not results["overload"]["db_ok"]:
        bad.append("overload")
    if bad:
        print(f"DATABASE CHECK FAILED (burst sizes / overload): {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
