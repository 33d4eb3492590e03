"""Faults: network toxics and database actions, each with an undo.

A fault is injected with `inject(ctx)` and always undone with `remove(ctx)` (the engine
calls it in `finally`). Faults that target one request (terminate mid-transaction) send
it through `ctx.workload` so it is recorded, and add checks of their own to
`ctx.checks`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field

import httpx

from chaos.checkers import CheckResult
from chaos.errors import WaitTimeout
from chaos.postgres import PostgresAdmin
from chaos.probes import Limits, read_metrics
from chaos.stack import Stack
from chaos.toxiproxy import NotFound, ToxicSpec, ToxiproxyClient
from chaos.waiting import wait_for
from chaos.workload import LiveWorkload

__all__ = [
    "DatabaseDown",
    "DatabaseFrozen",
    "Fault",
    "FaultContext",
    "HoldRowLock",
    "NetworkToxic",
    "ProxyDown",
    "TerminateIdleBackends",
    "TerminateMidTransaction",
]


@dataclass
class FaultContext:
    """What a fault may act on during one scenario run."""

    stack: Stack
    toxiproxy: ToxiproxyClient
    admin: PostgresAdmin
    limits: Limits
    workload: LiveWorkload
    coupons: list[str]
    run_id: str
    service: httpx.Client
    create_coupon: Callable[[str, int], str]
    """Make a coupon of the run's own: (suffix, stock) -> name."""
    checks: list[CheckResult] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    resources: ExitStack = field(default_factory=ExitStack)


class Fault(ABC):
    """Something that goes wrong, and its undo."""

    @property
    @abstractmethod
    def kind(self) -> str:
        """Short name of the fault type, for tables."""

    @abstractmethod
    def inject(self, ctx: FaultContext) -> None:
        """Make it go wrong."""

    def remove(self, ctx: FaultContext) -> None:  # noqa: B027 - instantaneous faults have no undo
        """Undo it (idempotent; called even when inject failed)."""


@dataclass(frozen=True)
class NetworkToxic(Fault):
    """A Toxiproxy toxic on the database proxy."""

    toxic: ToxicSpec

    @property
    def kind(self) -> str:
        attrs = ",".join(f"{k}={v}" for k, v in self.toxic.attributes().items())
        tox = f" toxicity={self.toxic.toxicity:g}" if self.toxic.toxicity != 1.0 else ""
        return f"{self.toxic.type}({attrs}) {self.toxic.stream}{tox}"

    def inject(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.add_toxic(ctx.stack.proxy_name, self.toxic)

    def remove(self, ctx: FaultContext) -> None:
        with suppress(NotFound):
            ctx.toxiproxy.remove_toxic(ctx.stack.proxy_name, self.toxic.toxic_name)


@dataclass(frozen=True)
class ProxyDown(Fault):
    """The proxy disabled: every connection closed, new connects refused."""

    @property
    def kind(self) -> str:
        return "proxy disabled"

    def inject(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.disable(ctx.stack.proxy_name)

    def remove(self, ctx: FaultContext) -> None:
        ctx.toxiproxy.enable(ctx.stack.proxy_name)


@dataclass(frozen=True)
class HoldRowLock(Fault):
    """The admin connection holds FOR UPDATE on every coupon of the workload."""

    @property
    def kind(self) -> str:
        return "row lock held by admin"

    def inject(self, ctx: FaultContext) -> None:
        for coupon in ctx.coupons:
            ctx.resources.enter_context(ctx.admin.hold_row_lock("coupons", "name", coupon))

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()


@dataclass(frozen=True)
class TerminateIdleBackends(Fault):
    """pg_terminate_backend on every idle pooled backend, while no claim is in flight.

    Invisible to clients: the pool checks a connection before handing it out.
    """

    @property
    def kind(self) -> str:
        return "pg_terminate_backend(idle)"

    def inject(self, ctx: FaultContext) -> None:
        deadline = ctx.limits.request_deadline + 5.0
        ctx.workload.pause(timeout=deadline)
        try:
            idle = {b.pid for b in ctx.admin.backends() if b.state == "idle"}
            for pid in idle:
                ctx.admin.terminate(pid)
            wait_for(
                lambda: not idle & {b.pid for b in ctx.admin.backends()},
                timeout=5.0,
                what=f"{len(idle)} terminated backends gone",
            )
            ctx.notes["terminated"] = len(idle)
            ctx.checks.append(
                CheckResult(
                    "fault:terminated-every-idle-backend",
                    len(idle) >= ctx.limits.pool_min_size,
                    f"terminated {len(idle)} idle backends (pool min size "
                    f"{ctx.limits.pool_min_size})",
                )
            )
        finally:
            ctx.workload.resume()


@dataclass(frozen=True)
class TerminateMidTransaction(Fault):
    """pg_terminate_backend on a claim that has already written.

    The admin connection holds an uncommitted claim of (victim, coupon); the service's
    claim of the same pair decrements the stock, then waits on the unique index. That
    backend is terminated: the client must get 503, and the decrement must roll back.
    """

    @property
    def kind(self) -> str:
        return "pg_terminate_backend(mid-transaction)"

    def inject(self, ctx: FaultContext) -> None:
        coupon = ctx.create_coupon("victim", 10)
        victim = f"victim-{ctx.run_id}"
        before = _pool_losses(ctx)
        with ctx.admin.hold_claim(victim, coupon) as holder:
            pending = ctx.workload.submit(victim, coupon)
            # Only the victim waits for the holder; the workload's claims (same query
            # text) can be waiting on each other's row locks at the same moment.
            (waiting,) = ctx.admin.wait_for_backend(
                timeout=ctx.limits.request_deadline,
                wait_event_type="Lock",
                query_contains="INSERT INTO claims",
                blocked_by=holder,
            )
            remaining_mid = ctx.admin.scalar(
                "SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,)
            )
            ctx.admin.terminate(waiting.pid)
            op = pending.result(timeout=ctx.limits.request_deadline + 5.0)
        remaining = ctx.admin.scalar(
            "SELECT remaining_amount FROM coupons WHERE name = %s", (coupon,)
        )
        claims = ctx.admin.scalar("SELECT count(*) FROM claims WHERE coupon_name = %s", (coupon,))
        ctx.notes["victim_status"] = op.status
        ctx.notes["victim_latency"] = round(op.latency, 3)
        ctx.checks += [
            CheckResult(
                "fault:victim-answered-503",
                op.status == 503 and op.retry_after is not None,
                f"victim claim answered {op.label} (Retry-After {op.retry_after}) "
                f"after {op.latency:.3f} s",
            ),
            CheckResult(
                "fault:no-partial-commit",
                remaining == 10 and claims == 0,
                f"victim coupon: remaining {remaining} (10 expected; the uncommitted "
                f"decrement was not visible: {remaining_mid}), claims {claims} (0 expected)",
            ),
        ]
        # The broken connection leaves the pool: its stats show it.
        try:
            wait_for(
                lambda: _pool_losses(ctx) > before,
                timeout=5.0,
                what="pool stats to count the broken connection",
            )
            lost_seen = True
        except WaitTimeout:
            lost_seen = False
        ctx.checks.append(
            CheckResult(
                "fault:broken-connection-left-the-pool",
                lost_seen,
                f"returns_bad + connections_lost: {before} before, {_pool_losses(ctx)} after",
            )
        )


def _pool_losses(ctx: FaultContext) -> int:
    m = read_metrics(ctx.service)
    return int(
        m.get("db_pool_returns_bad_total", 0)
        + m.get("db_pool_connections_lost_total", 0)
        + m.get("db_pool_checks_failed_total", 0)
    )


@dataclass(frozen=True)
class DatabaseDown(Fault):
    """PostgreSQL stopped like a crash, then started again on the same data."""

    @property
    def kind(self) -> str:
        return "postgres stopped (immediate)"

    def inject(self, ctx: FaultContext) -> None:
        ctx.stack.stop_database()
        ctx.notes["stopped_at"] = time.monotonic()

    def remove(self, ctx: FaultContext) -> None:
        ctx.stack.start_database()


@dataclass(frozen=True)
class DatabaseFrozen(Fault):
    """PostgreSQL's processes paused (SIGSTOP / docker pause), then resumed."""

    @property
    def kind(self) -> str:
        return "postgres frozen (SIGSTOP)"

    def inject(self, ctx: FaultContext) -> None:
        ctx.stack.pause_database()

    def remove(self, ctx: FaultContext) -> None:
        ctx.stack.resume_database()
