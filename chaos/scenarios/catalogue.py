"""The scenario catalogue: each entry is a declaration, run by chaos.run.engine.

Bounds come from the running service's limits (ACQUIRE, DEADLINE, HEALTH, plus SLACK);
the recovery bound is RECOVERY_BOUND (2 s) unless a scenario says otherwise.
"""

from __future__ import annotations

from chaos.faults.builtin import (
    DatabaseDown,
    DatabaseFrozen,
    HoldRowLock,
    NetworkToxic,
    ProxyDown,
    TerminateIdleBackends,
    TerminateMidTransaction,
)
from chaos.infra.toxiproxy import (
    Bandwidth,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from chaos.scenarios.model import ACQUIRE, DEADLINE, Expect, Scenario, Workload

__all__ = ["CATALOGUE", "by_name"]

CATALOGUE: tuple[Scenario, ...] = (
    Scenario(
        name="pool-exhaustion",
        description="AC1. Every pooled connection waits on a row lock the admin holds while a "
        "burst far above the pool size arrives: the excess gets 503 with Retry-After within "
        "the acquire timeout, the blocked ones 504; claims succeed once the lock is released.",
        fault=HoldRowLock(),
        workload=Workload(concurrency=32, coupons=1),
        duration=4.0,
        expect=Expect(during={503, 504}, must_see={503}, latency={503: ACQUIRE, 504: DEADLINE}),
    ),
    Scenario(
        name="query-timeout-lock",
        description="AC2. A claim blocked on a row lock past the statement timeout gets 504 "
        "within the deadline; the statement is cancelled on the server and rolled back: no "
        "claim, stock unchanged, no backend left running it or idle in transaction.",
        fault=HoldRowLock(),
        workload=Workload(concurrency=2, coupons=1),
        duration=4.0,
        expect=Expect(
            during={504}, must_see={504}, latency={504: DEADLINE}, timed_out_claims_absent=True
        ),
    ),
    Scenario(
        name="connection-drop-mid-transaction",
        description="AC3. pg_terminate_backend on a claim that has decremented the stock and "
        "waits on a lock for its insert: 503, no partial commit, the broken connection leaves "
        "the pool, the following claims succeed on healthy connections.",
        fault=TerminateMidTransaction(),
        workload=Workload(concurrency=4),
        duration=0.5,
        expect=Expect(during={200, 503}),
    ),
    Scenario(
        name="terminate-idle-backends",
        description="AC3. Every idle pooled backend terminated between requests: invisible to "
        "clients (the pool checks a connection before handing it out).",
        fault=TerminateIdleBackends(),
        workload=Workload(concurrency=4),
        duration=1.0,
        expect=Expect(during={200}, must_see={200}),
    ),
    Scenario(
        name="latency-below-deadline",
        description="100 ms of latency each way: every claim succeeds, slower.",
        fault=NetworkToxic(Latency(latency_ms=100)),
        expect=Expect(during={200}, must_see={200}, latency={200: DEADLINE}),
    ),
    Scenario(
        name="latency-above-deadline",
        description="Answers delayed past the request deadline: 504 at the deadline (503 once "
        "abandoned connections hold the pool), never a hang.",
        fault=NetworkToxic(Latency(latency_ms=2500)),
        expect=Expect(during={503, 504}, must_see={504}, latency={503: ACQUIRE, 504: DEADLINE}),
    ),
    Scenario(
        name="bandwidth-throttle",
        description="Answers from the database throttled to 4 KB/s: small claim traffic still "
        "succeeds within the deadline.",
        fault=NetworkToxic(Bandwidth(rate_kb=4)),
        workload=Workload(concurrency=4),
        expect=Expect(during={200}, must_see={200}, latency={200: DEADLINE}),
    ),
    Scenario(
        name="reset-peer",
        description="Every connection reset: 503 within the acquire timeout (the connection "
        "is lost, no new one connects); recovery once the toxic is gone.",
        fault=NetworkToxic(ResetPeer(timeout_ms=0)),
        expect=Expect(during={503}, must_see={503}, latency={503: ACQUIRE}, health=503),
    ),
    Scenario(
        name="blackhole",
        description="Timeout toxic with timeout 0: data dropped, connections kept open. 504 "
        "within the deadline (503 once abandoned connections hold the pool), never a hang; "
        "/health 503 within its bound; recovery once the toxic is removed.",
        fault=NetworkToxic(Timeout(timeout_ms=0)),
        expect=Expect(
            during={503, 504}, must_see={504}, latency={503: ACQUIRE, 504: DEADLINE}, health=503
        ),
    ),
    Scenario(
        name="proxy-down",
        description="The proxy disabled: connections closed, connects refused: 503 within "
        "the acquire timeout, /health 503; claims succeed again once it is enabled.",
        fault=ProxyDown(),
        expect=Expect(during={503}, must_see={503}, latency={503: ACQUIRE}, health=503),
    ),
    Scenario(
        name="proxy-down-long",
        description="The proxy disabled for 12 s, long enough for the pool's reconnect backoff "
        "to reach 8 s: claims must still succeed within the recovery bound once it is back.",
        fault=ProxyDown(),
        duration=12.0,
        expect=Expect(during={503}, must_see={503}, latency={503: ACQUIRE}, health=503),
    ),
    Scenario(
        name="blackhole-long",
        description="A 15 s blackhole: abandoned work finishes its cleanup and connects time "
        "out inside the fault; afterwards nothing leaks (no half-open socket, no extra "
        "backend) and claims recover within the bound.",
        fault=NetworkToxic(Timeout(timeout_ms=0)),
        duration=15.0,
        expect=Expect(
            during={503, 504}, must_see={503}, latency={503: ACQUIRE, 504: DEADLINE}, health=503
        ),
    ),
    Scenario(
        name="limit-data",
        description="Connections cut after 2 KB sent to the database, mid-stream: 503 for the "
        "claims on a cut connection, no partial commit; the pool reconnects.",
        fault=NetworkToxic(LimitData(bytes=2048, stream="upstream")),
        workload=Workload(concurrency=4),
        expect=Expect(during={200, 503}, must_see={503}, latency={503: DEADLINE}),
    ),
    Scenario(
        name="slicer",
        description="Answers sliced into small packets with delays: transparent, all 200.",
        fault=NetworkToxic(Slicer(average_size=16, size_variation=8, delay_us=200)),
        expect=Expect(during={200}, must_see={200}),
    ),
    Scenario(
        name="slow-close",
        description="Connections close 500 ms late: transparent, all 200.",
        fault=NetworkToxic(SlowClose(delay_ms=500)),
        expect=Expect(during={200}, must_see={200}),
    ),
    Scenario(
        name="reset-peer-partial",
        description="reset_peer on 30% of connections under load: mixed outcomes, every "
        "invariant holds.",
        fault=NetworkToxic(ResetPeer(timeout_ms=0, toxicity=0.3)),
        expect=Expect(during={200, 503, 504}, must_see={200}),
    ),
    Scenario(
        name="postgres-restart",
        description="PostgreSQL stopped like a crash under load, then started: 503 while it "
        "is down; every acknowledged claim survives; recovery within the bound.",
        fault=DatabaseDown(),
        expect=Expect(during={503}, must_see={503}, latency={503: DEADLINE}, health=503),
    ),
    Scenario(
        name="postgres-frozen",
        description="PostgreSQL frozen (SIGSTOP) under load, then resumed: 504 within the "
        "deadline (503 once abandoned connections hold the pool), never a hang; recovery "
        "within the bound after resume.",
        fault=DatabaseFrozen(),
        expect=Expect(
            during={503, 504}, must_see={504}, latency={503: ACQUIRE, 504: DEADLINE}, health=503
        ),
    ),
)


def by_name(name: str) -> Scenario:
    """The catalogue's scenario of that name."""
    for scenario in CATALOGUE:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; known: {', '.join(s.name for s in CATALOGUE)}")
