"""Shared helpers of the benchmarks: a claim load generator over HTTP, the median, CPU
accounting and JSON output (percentiles are chaos.core.history.percentile). Nothing here
starts a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import ssl
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from chaos.core.history import percentile
from chaos.infra.processes import process_tree

__all__ = [
    "HUGE_STOCK",
    "RESULTS_DIR",
    "ClaimLoad",
    "CpuMeter",
    "Progress",
    "create_coupon",
    "drive_claims",
    "env_note",
    "median",
    "process_tree",
    "run_async",
    "write_json",
]

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Default home of the JSON results (ignored by bench/.gitignore)."""

HUGE_STOCK = 2_000_000_000
"""A stock no benchmark can exhaust (the column is an INTEGER)."""


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when installed (a cheaper load generator), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def write_json(path: Path, payload: object) -> None:
    """Write `payload` as indented JSON (floats to 4 decimals), creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_rounded(payload), indent=2, sort_keys=False)
    path.write_text(text + "\n", encoding="utf-8")


def create_coupon(base_url: str, name: str, amount: int = HUGE_STOCK) -> None:
    """Create a coupon through the service's API."""
    resp = httpx.post(
        f"{base_url}/api/coupons", json={"name": name, "amount": amount}, timeout=10.0
    )
    if resp.status_code != 201:
        raise RuntimeError(f"creating coupon {name} answered {resp.status_code}: {resp.text}")


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent busy since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()`.

    A group is a callable returning its processes now. A thread polls every `interval`
    seconds, so processes that come and go (PostgreSQL backends of pgbench) are counted up
    to their last reading. The group `others` is the rest of the machine's busy CPU
    (system-wide busy time minus the groups): somebody else's work competing with ours.
    """

    def __init__(
        self,
        groups: Mapping[str, Callable[[], Iterable[psutil.Process]]],
        *,
        interval: float = 0.25,
    ) -> None:
        self.groups = dict(groups)
        self.interval = interval
        self._before: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {}
        self._started = 0.0
        self._busy_before = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: dict[str, float] = {}
        self.wall = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, procs in self.groups.items():
            seen: dict[int, float] = {}
            for proc in procs():
                try:
                    seen[proc.pid] = _cpu_seconds(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            out[name] = seen
        return out

    def _merge(self, reading: dict[str, dict[int, float]]) -> None:
        for name, seen in reading.items():
            last = self._last.setdefault(name, {})
            for pid, secs in seen.items():
                last[pid] = max(secs, last.get(pid, 0.0))

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._merge(self._read())

    def start(self) -> None:
        """Take the baseline and start polling."""
        self._before = self._read()
        self._last = {}
        self._merge(self._before)
        self._busy_before = _machine_busy()
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Stop polling; CPU seconds per group since `start()`."""
        self.wall = time.monotonic() - self._started
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._merge(self._read())
        self.result = {
            name: sum(t - self._before.get(name, {}).get(pid, 0.0) for pid, t in last.items())
            for name, last in self._last.items()
        }
        busy = _machine_busy() - self._busy_before
        self.result["others"] = max(0.0, busy - sum(self.result.values()))
        return self.result

    def share(self) -> dict[str, float]:
        """CPU use per group as a percentage of one core (200 = two cores busy)."""
        if self.wall <= 0:
            return {}
        return {name: 100.0 * secs / self.wall for name, secs in self.result.items()}


@dataclass
class Progress:
    """Claims sent and answered so far by `drive_claims` (readable from other threads)."""

    sent: int = 0
    done: int = 0


@dataclass
class ClaimLoad:
    """Claims sent by `drive_claims`: (start, end, status) on the perf_counter clock.

    `status` is the HTTP status, or a client-side error's class name.
    """

    window_start: float
    window_end: float
    ops: list[tuple[float, float, int | str]] = field(default_factory=list)

    def in_window(self) -> list[tuple[float, float, int | str]]:
        """Claims that ended inside the measured window (warm-up and tail excluded)."""
        return [op for op in self.ops if self.window_start <= op[1] <= self.window_end]

    @property
    def seconds(self) -> float:
        return self.window_end - self.window_start

    def statuses(self) -> Counter[str]:
        """Answers in the window by status."""
        return Counter(str(op[2]) for op in self.in_window())

    def ok_latencies(self) -> list[float]:
        """Latencies (s) of the window's successful claims."""
        return [end - start for start, end, status in self.in_window() if status == 200]

    def summary(self) -> dict[str, Any]:
        """claims/s, latency percentiles (ms) and the answers, for tables and JSON."""
        lat = self.ok_latencies()
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        return {
            "seconds": round(self.seconds, 3),
            "claims": len(lat),
            "claims_per_s": len(lat) / self.seconds if self.seconds > 0 else 0.0,
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
            "mean_ms": statistics.fmean(lat) * 1000 if lat else None,
            "max_ms": max(lat) * 1000 if lat else None,
            "statuses": dict(self.statuses()),
        }


async def drive_claims(
    base_url: str,
    coupon: str,
    *,
    clients: int,
    user_prefix: str,
    seconds: float | None = None,
    total: int | None = None,
    warmup: float = 0.0,
    timeout: float = 30.0,
    on_window: tuple[Callable[[], object], Callable[[], object]] | None = None,
    progress: Progress | None = None,
) -> ClaimLoad:
    """`clients` concurrent clients claim `coupon`, each claim by a new user, one after
    another, until `seconds` after the warm-up have passed or `total` claims were sent.

    Every client is its own httpx.AsyncClient with one keep-alive connection: one
    AsyncClient shared by many concurrent requests spends its CPU scanning its own pool
    (httpcore's `_assign_requests_to_connections` is O(connections x requests); about
    100 claims/s at 64 concurrent requests on 2 cores, encode/httpx#3215), which would
    measure httpx, not the service. The clients share one SSL context (building one
    costs ~20 ms of CPU, even for plain http).

    `on_window` (only with `seconds`) is called (start, end) around the measured window;
    `progress` is kept up to date.
    """
    if (seconds is None) == (total is None):
        raise ValueError("give exactly one of seconds and total")
    if on_window is not None and seconds is None:
        raise ValueError("on_window needs seconds")
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()
    clock = time.perf_counter
    counts = progress if progress is not None else Progress()
    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=tls)
            )
            for _ in range(clients)
        ]
        begin = clock()
        load = ClaimLoad(window_start=begin + warmup, window_end=float("inf"))
        stop_at = load.window_start + seconds if seconds is not None else float("inf")

        async def worker(index: int) -> None:
            client = pool[index]
            n = 0
            while clock() < stop_at and (total is None or counts.sent < total):
                counts.sent += 1
                n += 1
                body = {"user_id": f"{user_prefix}-{index}-{n}", "coupon_name": coupon}
                start = clock()
                status: int | str
                try:
                    status = (await client.post("/api/coupons/claim", json=body)).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                load.ops.append((start, clock(), status))
                counts.done += 1

        async def window() -> None:
            assert on_window is not None
            await asyncio.sleep(max(0.0, load.window_start - clock()))
            on_window[0]()
            await asyncio.sleep(max(0.0, stop_at - clock()))
            on_window[1]()

        watcher = asyncio.create_task(window()) if on_window else None
        await asyncio.gather(*(worker(i) for i in range(clients)))
        if watcher is not None:
            await watcher
    load.window_end = stop_at if seconds is not None else max((op[1] for op in load.ops), default=0)
    return load


def env_note() -> dict[str, Any]:
    """The machine the figures come from."""
    return {
        "cpus": os.cpu_count(),
        "load_avg_1m_before": os.getloadavg()[0],
        "python": platform.python_version(),
    }
