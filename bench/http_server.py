"""HTTP server candidates side by side: flash-sale throughput and hostile-connection probes.

Candidates, each serving the same app (app.api:create_app) over the same throwaway
PostgreSQL:

- `uvicorn`: uvicorn with httptools as `python -m app` ran it before (keep-alive 5 s,
  `--limit-concurrency` at the probe's cap, its only connection-count knob);
- `guarded`: `python -m app` now (app/server.py: uvicorn's httptools protocol with idle,
  head and body deadlines, a head size limit and a connection cap; default settings
  except HTTP_MAX_CONNECTIONS = the probe's cap);
- `granian`: Granian (Rust, hyper) with its nearest knobs: header read timeout 10 s,
  HTTP/1 buffer 16 KiB, backpressure at the probe's cap.

Per candidate:

1. throughput: `wrk` (C, Debian's package) claims one hot coupon for `--seconds`, each
   request by a new user (a Lua script), `--connections` keep-alive connections;
2. probes, at once, for PROBE_WINDOW seconds: IDLE idle connections, SLOW slowloris
   connections (one head byte a second), SLOW slow-body connections (a claim's head,
   then one body byte a second); when (if) the server closed each, and claims/s of a
   second wrk run meanwhile;
3. one 100 MiB header: bytes the server took before closing, its answer, RSS growth;
4. the cap: CAP + 200 connections opened and held; how many the server refused, RSS
   per held connection, and whether a held connection still gets 200 for a claim;
5. shutdown: SIGTERM while SLOW slow-body requests are in flight; seconds to exit.

    .venv/bin/python -m bench.http_server [--seconds 10] [--connections 64]

Prints a table and writes bench/results/http_server.json. Not a test: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import wrk
from bench.common import (
    RESULTS_DIR,
    CpuMeter,
    create_coupon,
    env_note,
    median,
    process_tree,
    write_json,
)
from chaos.infra.postgres import PostgresCluster
from chaos.infra.processes import ManagedProcess
from chaos.infra.service import ServiceProcess
from chaos.infra.waiting import wait_for
from chaos.targets.coupons import COUPONS

__all__ = ["main"]

PROBE_WINDOW = 15.0
"""Seconds the idle, slowloris and slow-body probes hold on (defaults cut at 10 s)."""
IDLE = 200
SLOW = 50
CAP = 1000
"""Connection cap every candidate runs with, and what the cap probe goes past."""
HUGE_HEADER = 100 * 1024 * 1024
SHUTDOWN_WAIT = 60.0
"""Longest wait for a candidate to exit after SIGTERM before the figure says 'killed'."""


@dataclass(frozen=True)
class Candidate:
    name: str
    argv: list[str]
    env: dict[str, str]


def candidates() -> list[Candidate]:
    """The servers compared; "PORT" in argv is replaced by the port the run picks."""
    py = sys.executable
    host = "127.0.0.1"
    port = "PORT"
    return [
        Candidate(
            "uvicorn",
            [
                *(py, "-m", "uvicorn", "--factory", "app.api:create_app", "--host", host),
                *("--port", port, "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning", "--limit-concurrency", str(CAP)),
                *("--timeout-graceful-shutdown", "4"),
            ],
            {},
        ),
        Candidate("guarded", [py, "-m", "app"], {"HTTP_MAX_CONNECTIONS": str(CAP)}),
        Candidate(
            "granian",
            [
                *(py, "-m", "granian", "--interface", "asgi", "--factory", "app.api:create_app"),
                *("--host", host, "--port", port, "--http", "1", "--no-ws"),
                *("--loop", "uvloop", "--workers", "1", "--backpressure", str(CAP)),
                *("--http1-header-read-timeout", "10000", "--http1-buffer-size", "16384"),
                *("--log-level", "warning", "--workers-kill-timeout", "4"),
            ],
            {},
        ),
    ]


@contextlib.contextmanager
def running(
    candidate: Candidate, database_url: str, log_dir: Path
) -> Iterator[tuple[ManagedProcess, int]]:
    """The candidate serving on its port until /health answers; stopped on exit."""
    # ServiceProcess gives the same environment and port the service always gets.
    svc = ServiceProcess(
        database_url=database_url,
        env=candidate.env,
        log_dir=log_dir,
        settings_names=COUPONS.settings_names,
    )
    argv = [a if a != "PORT" else str(svc.port) for a in candidate.argv]
    proc = ManagedProcess(
        argv,
        name=candidate.name,
        log_path=log_dir / f"{candidate.name}.log",
        env=svc.environment(),
        stop_timeout=SHUTDOWN_WAIT,
    )
    proc.start()
    try:

        def healthy() -> bool:
            proc.check_alive()
            return httpx.get(f"{svc.url}/health", timeout=1.0).status_code == 200

        wait_for(healthy, timeout=60.0, what=f"{candidate.name} healthy")
        yield proc, svc.port
    finally:
        proc.stop()


def rss(pid: int | None) -> int:
    """Resident memory of a process tree, bytes."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_wrk(url: str, coupon: str, *, seconds: float, connections: int) -> dict[str, Any]:
    """Claims/s and latency of wrk claiming the hot coupon, each request a new user
    (bench.wrk's runner and Lua script, as bench.flash_sale uses them)."""
    result = wrk.run_wrk(
        url,
        coupon=coupon,
        prefix=uuid.uuid4().hex[:12],
        connections=connections,
        threads=2,
        seconds=seconds,
        timeout=seconds,
    )
    result["non_2xx"] = result["requests"] - result["claims"]
    return result


async def _closed_after(
    host: str, port: int, payload: bytes, drip: bytes, window: float
) -> float | None:
    """Send `payload`, then `drip` one byte a second; seconds until the server closed."""
    reader, writer = await asyncio.open_connection(host, port)
    start = time.monotonic()
    try:
        if payload:
            writer.write(payload)
        for byte in drip:
            left = window - (time.monotonic() - start)
            if left <= 0:
                return None
            writer.write(bytes([byte]))
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=min(1.0, left))
            except TimeoutError:
                continue
            if not data:
                return time.monotonic() - start
            # An answer (408, 400): read on until the close.
            with contextlib.suppress(TimeoutError):
                while await asyncio.wait_for(reader.read(65536), timeout=window):
                    pass
            return time.monotonic() - start
        left = window - (time.monotonic() - start)
        with contextlib.suppress(TimeoutError):
            while await asyncio.wait_for(reader.read(65536), timeout=left):
                pass
            return time.monotonic() - start
        return None
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _summary(times: Sequence[float | None]) -> dict[str, Any]:
    closed = [t for t in times if t is not None]
    return {
        "connections": len(times),
        "closed": len(closed),
        "open_at_end": len(times) - len(closed),
        "closed_after_s_median": median(closed),
    }


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
CLAIM_HEAD = (
    b"POST /api/coupons/claim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


async def probe_slow_clients(host: str, port: int) -> dict[str, Any]:
    """Idle, slowloris and slow-body connections at once for PROBE_WINDOW seconds."""
    drip_body = b'{"user_id": "' + b"u" * 99_000
    idle = [_closed_after(host, port, b"", b"", PROBE_WINDOW) for _ in range(IDLE)]
    loris = [_closed_after(host, port, b"", SLOW_HEAD, PROBE_WINDOW) for _ in range(SLOW)]
    body = [_closed_after(host, port, CLAIM_HEAD, drip_body, PROBE_WINDOW) for _ in range(SLOW)]
    results = await asyncio.gather(*idle, *loris, *body)
    return {
        "idle": _summary(results[:IDLE]),
        "slowloris": _summary(results[IDLE : IDLE + SLOW]),
        "slow_body": _summary(results[IDLE + SLOW :]),
    }


def probe_huge_header(host: str, port: int, pid: int | None) -> dict[str, Any]:
    """One header of HUGE_HEADER bytes, sent as fast as the server takes it."""
    import socket

    before = rss(pid)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sent = 0
    answer = b""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=30.0) as sock:
            chunk = b"a" * 65536
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ")
                while sent < HUGE_HEADER:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass
            with contextlib.suppress(OSError):
                sock.settimeout(10.0)
                answer = sock.recv(200)
    finally:
        stop.set()
        sampler.join()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "(closed)"
    return {
        "bytes_taken_mib": sent / 2**20,
        "seconds": time.monotonic() - started,
        "answer": status,
        "rss_growth_mib": (peak - before) / 2**20,
    }


async def probe_cap(host: str, port: int, pid: int | None, coupon: str) -> dict[str, Any]:
    """CAP + 200 connections held; refusals, memory per connection, a held one's claim."""
    before = rss(pid)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(CAP + 200):
        held.append(await asyncio.open_connection(host, port))
    await asyncio.sleep(1.0)  # figures, not a test: let the server act on every accept
    after = rss(pid)
    refused = 0
    for reader, _ in held:
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            if not await asyncio.wait_for(reader.read(1), timeout=0.001):
                refused += 1
    # A claim on the first connection (accepted before any cap applied).
    reader, writer = held[0]
    body = json.dumps({"user_id": f"cap-{uuid.uuid4().hex}", "coupon_name": coupon}).encode()
    writer.write(
        b"POST /api/coupons/claim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=10.0)
        held_answer = line.decode(errors="replace").strip() or "(closed)"
    except (TimeoutError, ConnectionResetError) as exc:
        held_answer = type(exc).__name__
    for _, writer in held:
        writer.close()
    kept = CAP + 200 - refused
    return {
        "opened": CAP + 200,
        "refused": refused,
        "rss_per_connection_kib": (after - before) / max(1, kept) / 1024,
        "held_connection_claim": held_answer,
    }


async def _slow_bodies(host: str, port: int, ready: threading.Event, done: asyncio.Event) -> None:
    conns = [await asyncio.open_connection(host, port) for _ in range(SLOW)]
    for _, writer in conns:
        writer.write(CLAIM_HEAD + b"{")
        await writer.drain()
    ready.set()
    await done.wait()
    for _, writer in conns:
        writer.close()


def shutdown_seconds(host: str, port: int, proc: ManagedProcess) -> float | None:
    """Seconds from SIGTERM to exit with SLOW slow-body requests in flight."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    holder = threading.Thread(
        target=loop.run_until_complete, args=(_slow_bodies(host, port, ready, done),)
    )
    holder.start()
    try:
        ready.wait(30.0)
        time.sleep(0.5)  # figures, not a test: the requests reach the app
        assert proc.pid is not None
        ps = psutil.Process(proc.pid)
        started = time.monotonic()
        ps.terminate()
        try:
            ps.wait(SHUTDOWN_WAIT)
        except psutil.TimeoutExpired:
            return None
        return time.monotonic() - started
    finally:
        loop.call_soon_threadsafe(done.set)
        holder.join(30.0)
        loop.close()


_MICRO_BODY = b'{"user_id":"u-1-1","coupon_name":"hot"}'
_MICRO_REQUEST = (
    b"POST /api/coupons/claim HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_MICRO_BODY), _MICRO_BODY)
)


class _NullTransport:
    """Just enough of a transport for a protocol to parse requests and write answers."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


async def _minimal_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


async def _protocol_us(cls: Any, requests: int) -> float:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(_minimal_app, http=cls, lifespan="off", log_level="warning")
    config.load()
    proto = cls(config=config, server_state=ServerState(), app_state={})
    proto.connection_made(_NullTransport())
    started = time.perf_counter()
    for _ in range(requests):
        proto.data_received(_MICRO_REQUEST)
        await asyncio.sleep(0)  # the request's task runs
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    proto.connection_lost(None)
    return elapsed / requests * 1e6


def protocol_overhead(rounds: int = 15, requests: int = 20_000) -> dict[str, float]:
    """In-process microseconds per claim-shaped request through uvicorn's httptools
    protocol and through the guarded one (a do-nothing app; minimum over rounds)."""
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from app.server import GuardedHttpToolsProtocol, HttpLimits
    from app.settings import Settings

    guarded = GuardedHttpToolsProtocol.bind(HttpLimits.from_settings(Settings()))

    async def measure() -> dict[str, float]:
        plain: list[float] = []
        ours: list[float] = []
        for _ in range(rounds):
            plain.append(await _protocol_us(HttpToolsProtocol, requests))
            ours.append(await _protocol_us(guarded, requests))
        return {"uvicorn_us": min(plain), "guarded_us": min(ours)}

    return uvloop.run(measure())


def measure_throughput(
    candidate: Candidate, cluster: PostgresCluster, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    """One throughput round: wrk claims a fresh hot coupon; claims/s, latency, CPU."""
    with running(candidate, cluster.url, log_dir) as (proc, port):
        url = f"http://127.0.0.1:{port}"
        coupon = f"hot-{candidate.name}-{uuid.uuid4().hex[:8]}"
        create_coupon(url, coupon)
        pid = proc.pid
        run_wrk(url, coupon, seconds=2, connections=args.connections)  # warm-up
        me = psutil.Process()
        meter = CpuMeter(
            {
                "server": lambda: process_tree(pid),
                "postgres": lambda: process_tree(cluster.postmaster_pid()),
                "wrk": lambda: [c for c in me.children() if c.name() == "wrk"],
            }
        )
        meter.start()
        result = run_wrk(url, coupon, seconds=args.seconds, connections=args.connections)
        cpu = meter.stop()
        claims = (result["claims_per_s"] or 0.0) * meter.wall
        result["cpu_percent"] = meter.share()
        result["server_cpu_ms_per_claim"] = 1000 * cpu["server"] / claims if claims else None
        result["rss_mib"] = rss(pid) / 2**20
        return result


def measure_probes(
    candidate: Candidate, cluster: PostgresCluster, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    """The hostile-connection probes against one fresh instance of the candidate."""
    row: dict[str, Any] = {}
    with running(candidate, cluster.url, log_dir) as (proc, port):
        url = f"http://127.0.0.1:{port}"
        coupon = f"hot-{candidate.name}-{uuid.uuid4().hex[:8]}"
        create_coupon(url, coupon)
        pid = proc.pid
        say(f"{candidate.name}: probes for {PROBE_WINDOW:g} s, with wrk alongside")
        under: dict[str, Any] = {}

        def wrk_alongside() -> None:
            under.update(
                run_wrk(
                    url,
                    coupon,
                    seconds=PROBE_WINDOW - 2,
                    connections=args.connections,
                )
            )

        side = threading.Thread(target=wrk_alongside)
        side.start()
        row["probes"] = asyncio.run(probe_slow_clients("127.0.0.1", port))
        side.join()
        row["throughput_under_probes"] = under
        say(f"{candidate.name}: 100 MiB header")
        row["huge_header"] = probe_huge_header("127.0.0.1", port, pid)
        say(f"{candidate.name}: {CAP + 200} connections against a cap of {CAP}")
        row["cap"] = asyncio.run(probe_cap("127.0.0.1", port, pid, coupon))
        say(f"{candidate.name}: SIGTERM with {SLOW} slow bodies in flight")
        row["shutdown_s"] = shutdown_seconds("127.0.0.1", port, proc)
    return row


def _medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median claims/s, latency and CPU per claim over the rounds."""

    def med(key: str) -> float | None:
        return median([r[key] for r in rounds if r[key] is not None])

    return {
        "rounds": len(rounds),
        "claims_per_s": med("claims_per_s"),
        "claims_per_s_all": [r["claims_per_s"] for r in rounds],
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "server_cpu_ms_per_claim": med("server_cpu_ms_per_claim"),
        "server_cpu_ms_per_claim_all": [r["server_cpu_ms_per_claim"] for r in rounds],
        "others_cpu_percent": median([r["cpu_percent"].get("others", 0.0) for r in rounds]),
        "rss_mib": med("rss_mib"),
    }


_started = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f} s] {msg}", flush=True)


def _f(value: object, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]], micro: dict[str, float] | None) -> None:
    lines: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("claims/s (wrk), median", lambda r: _f(r["throughput"]["claims_per_s"])),
        (
            "claims/s, each round",
            lambda r: ",".join(_f(v) for v in r["throughput"]["claims_per_s_all"]),
        ),
        (
            "p50 / p99 ms",
            lambda r: (
                f"{_f(r['throughput']['p50_ms'], '.1f')} / {_f(r['throughput']['p99_ms'], '.1f')}"
            ),
        ),
        ("non-2xx", lambda r: str(r["throughput"]["non_2xx"])),
        (
            "server CPU ms per claim",
            lambda r: _f(r["throughput"]["server_cpu_ms_per_claim"], ".3f"),
        ),
        ("others' CPU % (contention)", lambda r: _f(r["throughput"]["others_cpu_percent"])),
        ("server RSS MiB", lambda r: _f(r["throughput"]["rss_mib"], ".1f")),
        ("claims/s during probes", lambda r: _f(r["throughput_under_probes"]["claims_per_s"])),
        *(
            (
                f"{kind}: closed / open at {PROBE_WINDOW:g} s",
                lambda r, k=kind: (
                    f"{r['probes'][k]['closed']} / {r['probes'][k]['open_at_end']}"
                    + f" (median {_f(r['probes'][k]['closed_after_s_median'], '.1f')} s)"
                ),
            )
            for kind in ("idle", "slowloris", "slow_body")
        ),
        ("100 MiB header: MiB taken", lambda r: _f(r["huge_header"]["bytes_taken_mib"], ".1f")),
        ("100 MiB header: answer", lambda r: r["huge_header"]["answer"]),
        ("100 MiB header: RSS growth MiB", lambda r: _f(r["huge_header"]["rss_growth_mib"], ".1f")),
        (f"{CAP + 200} conns: refused", lambda r: str(r["cap"]["refused"])),
        ("RSS per held connection KiB", lambda r: _f(r["cap"]["rss_per_connection_kib"], ".1f")),
        ("held connection's claim", lambda r: r["cap"]["held_connection_claim"]),
        (f"SIGTERM with {SLOW} slow bodies: s", lambda r: _f(r["shutdown_s"], ".1f")),
    ]
    width = max(len(label) for label, _ in lines)
    print(f"{'':{width}}  " + "  ".join(f"{r['candidate']:>24}" for r in rows))
    for label, fmt in lines:
        print(f"{label:{width}}  " + "  ".join(f"{fmt(r):>24}" for r in rows))
    if micro:
        print(
            f"\nin-process, one claim-shaped request through the protocol (do-nothing app): "
            f"uvicorn {micro['uvicorn_us']:.1f} us, guarded {micro['guarded_us']:.1f} us"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds of wrk")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--repeat", type=int, default=3, help="throughput rounds per candidate")
    parser.add_argument(
        "--candidate",
        action="append",
        choices=["uvicorn", "guarded", "granian"],
        help="measure only these (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "http_server.json")
    args = parser.parse_args(argv)
    try:
        wrk.find_wrk()
    except wrk.WrkError as exc:
        raise SystemExit(str(exc)) from exc
    machine = env_note()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    chosen = [c for c in candidates() if not args.candidate or c.name in args.candidate]
    rounds: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
    rows: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    cluster = PostgresCluster()
    try:
        say("starting PostgreSQL")
        cluster.start()
        # Rounds interleave the candidates and rotate their order, so a neighbour's load
        # and the growing claims table spread over all of them.
        for n in range(args.repeat):
            shift = n % len(chosen)
            for cand in chosen[shift:] + chosen[:shift]:
                say(f"round {n + 1}/{args.repeat}: {cand.name}, wrk {args.seconds} s")
                rounds[cand.name].append(measure_throughput(cand, cluster, args, log_dir))
        for cand in chosen:
            rows.append(
                {
                    "candidate": cand.name,
                    "throughput": _medians(rounds[cand.name]),
                    **measure_probes(cand, cluster, args, log_dir),
                }
            )
    finally:
        cluster.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    say("in-process protocol overhead")
    micro = protocol_overhead()
    print()
    print_table(rows, micro)
    write_json(
        args.out,
        {
            "benchmark": "http_server",
            "started_at": started_at,
            "machine": machine,
            "rows": rows,
            "protocol_overhead": micro,
        },
    )
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
