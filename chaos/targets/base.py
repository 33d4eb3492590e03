"""The target interface: everything the generic toolkit needs to know about one service.

The engine, faults, checks and reports are generic: they drive a service over HTTP,
put faults between it and PostgreSQL, and read its `/metrics` (the `service_limit`
gauges and psycopg_pool's counters). What one service's requests, data and invariants
are is a `Target`; `chaos.targets.coupons` is the coupon service's. A second service
would be one new module implementing this protocol, passed as `target=` to
`run_scenario` / `run_selection` (and the `chaos_target` fixture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import httpx

from chaos.checks.base import CheckResult
from chaos.infra.postgres import PostgresAdmin
from chaos.run.history import Operation

if TYPE_CHECKING:
    from chaos.faults.base import Fault

__all__ = ["Target"]


class Target(Protocol):
    """One service under test: its keyed operation, its data and its invariants."""

    @property
    def name(self) -> str:
        """Short name, for reports."""

    @property
    def application_name(self) -> str:
        """The `application_name` of the service's database sessions (pg_stat_activity)."""

    def create_key(self, service: httpx.Client, name: str, amount: int) -> str:
        """Create one key the workload contends on (a coupon with `amount` stock)."""

    async def operate(
        self, client: httpx.AsyncClient, user: str, key: str, *, clock_zero: float
    ) -> Operation:
        """Send one operation by `user` on `key`; client-side errors are recorded."""

    def check(
        self,
        admin: PostgresAdmin,
        operations: Sequence[Operation],
        keys: Sequence[str],
        *,
        timed_out_absent: bool,
    ) -> list[CheckResult]:
        """The invariants over the history and the database state of `keys`;
        `timed_out_absent`: operations answered 504 must have left nothing."""

    def lock_key(self, admin: PostgresAdmin, key: str) -> AbstractContextManager[None]:
        """Hold the row lock every operation on `key` needs, until exit."""

    def fault_kinds(self) -> Mapping[str, type[Fault]]:
        """Fault kinds only this target knows (scenario files name them like any other)."""
