"""Flash-sale claims driven by wrk, the C load generator (Debian's `wrk`, installed by
`./dev setup`): every request a new user on one hot coupon.

wrk keeps `connections` keep-alive connections busy (closed loop: each sends its next
request when the answer arrives) from `threads` threads. A Lua script builds each body
(user id = prefix, thread number and a per-thread counter, so no two requests share a
user), counts the answers by status, and prints one JSON line with wrk's own latency
histogram. A Python generator was the bottleneck here (about 1,400 claims/s with httpx on
2 cores, most of a core spent in the client); wrk costs a fraction of that per request.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CLAIM_SCRIPT", "WrkError", "find_wrk", "run_wrk"]

CLAIM_SCRIPT = r"""
-- One hot coupon, every request a new user: "<prefix>-<thread>-<n>".
-- Arguments after `--`: coupon name, user id prefix.
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  coupon = args[1]
  prefix = args[2]
  n = 0
  statuses = {}
  json_headers = {["Content-Type"] = "application/json"}
end

function request()
  n = n + 1
  local body = string.format('{"user_id":"%s-%d-%d","coupon_name":"%s"}',
                             prefix, thread_id, n, coupon)
  return wrk.format("POST", "/api/coupons/claim", json_headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for code, c in pairs(t:get("statuses")) do
      counts[code] = (counts[code] or 0) + c
    end
  end
  local parts = {}
  for code, c in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', code, c))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"duration_us":%.0f,"requests":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f},' ..
    '"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, table.concat(parts, ",")))
end
"""

_MARK = "WRK-JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no figures."""


def find_wrk() -> str:
    """The wrk binary on PATH."""
    found = shutil.which("wrk")
    if not found:
        raise WrkError("wrk not found: run ./dev setup (installs Debian's wrk package)")
    return found


def run_wrk(
    base_url: str,
    *,
    coupon: str,
    prefix: str,
    connections: int,
    threads: int,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    """Run wrk against the claim route; its figures (latency in ms) and its CPU seconds."""
    workdir = Path(tempfile.mkdtemp(prefix="coupon-bench-wrk-"))
    try:
        script = workdir / "claim.lua"
        script.write_text(CLAIM_SCRIPT, encoding="utf-8")
        argv = [
            find_wrk(),
            f"--threads={max(1, min(threads, connections))}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout))}s",
            f"--script={script}",
            f"{base_url}/api/coupons/claim",
            "--",
            coupon,
            prefix,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + 30, check=False
            )
        except subprocess.TimeoutExpired as exc:  # subprocess.run kills it
            raise WrkError(f"wrk still running {seconds + 30:.0f} s after start") from exc
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise WrkError(f"wrk printed no figures:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    raw = json.loads(line[len(_MARK) :])
    statuses = {str(k): int(v) for k, v in raw["statuses"].items()}
    wall = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "seconds": wall,
        "requests": int(raw["requests"]),
        "claims": statuses.get("200", 0),
        "claims_per_s": statuses.get("200", 0) / wall if wall > 0 else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "mean_ms": lat["mean"] / 1000,
        "statuses": statuses,
        "socket_errors": {k: int(v) for k, v in raw["errors"].items() if k != "status" and v},
        "wrk_cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }
