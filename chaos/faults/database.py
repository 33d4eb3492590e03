"""Database faults: a row lock held, idle backends terminated, the database read-only,
PostgreSQL stopped or frozen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaos.core.checks import CheckResult
from chaos.faults.base import Fault, FaultContext
from chaos.infra.waiting import wait_for

__all__ = [
    "DatabaseDown",
    "DatabaseFrozen",
    "HoldRowLock",
    "ReadOnlyDatabase",
    "TerminateIdleBackends",
]


@dataclass(frozen=True)
class HoldRowLock(Fault):
    """The admin connection holds the target's row lock on every key of the workload."""

    @property
    def kind(self) -> str:
        return "row lock held by admin"

    def inject(self, ctx: FaultContext) -> None:
        for key in ctx.keys:
            ctx.resources.enter_context(ctx.lock_key(ctx.admin, key))

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()


@dataclass(frozen=True)
class TerminateIdleBackends(Fault):
    """pg_terminate_backend on every idle pooled backend, while no request is in flight.

    Invisible to clients: the pool checks a connection before handing it out.
    """

    hidden: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return "pg_terminate_backend(idle)"

    def inject(self, ctx: FaultContext) -> None:
        ctx.workload.pause(timeout=ctx.limits.cleanup_bound)
        try:
            idle = {b.pid for b in ctx.admin.backends() if b.state == "idle"}
            terminated = [pid for pid in idle if ctx.admin.terminate(pid)]
            wait_for(
                lambda: not idle & {b.pid for b in ctx.admin.backends()},
                timeout=ctx.limits.request_deadline,
                what=f"{len(idle)} terminated backends gone",
            )
            ctx.notes["terminated"] = len(terminated)
            ctx.evidence.append(f"{len(terminated)} idle backends terminated")
            ctx.checks.append(
                CheckResult(
                    "fault:terminated-every-idle-backend",
                    len(terminated) >= ctx.limits.pool_min_size,
                    f"terminated {len(terminated)} idle backends (pool min size "
                    f"{ctx.limits.pool_min_size})",
                )
            )
        finally:
            ctx.workload.resume()


@dataclass(frozen=True)
class DatabaseDown(Fault):
    """PostgreSQL stopped like a crash, then started again on the same data."""

    @property
    def kind(self) -> str:
        return "postgres stopped (immediate)"

    def inject(self, ctx: FaultContext) -> None:
        ctx.stack.stop_database()

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


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class ReadOnlyDatabase(Fault):
    """The database refuses writes, as a demoted primary does (a router or a stale DNS
    entry still sending sessions to it): `default_transaction_read_only` is switched on
    for the database and the service's backends are terminated, so every session it
    opens again is read-only and a write answers SQLSTATE 25006. Removed: the setting
    is reset; sessions opened meanwhile stay read-only until the service replaces them.
    """

    @property
    def kind(self) -> str:
        return "database read-only (default_transaction_read_only)"

    def inject(self, ctx: FaultContext) -> None:
        name = _quoted(str(ctx.admin.scalar("SELECT current_database()")))
        ctx.resources.callback(
            ctx.admin.query, f"ALTER DATABASE {name} RESET default_transaction_read_only"
        )
        ctx.admin.query(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        terminated = [b.pid for b in ctx.admin.backends() if ctx.admin.terminate(b.pid)]
        ctx.evidence.append(
            f"database read-only; {len(terminated)} of the service's backends terminated"
        )

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()
