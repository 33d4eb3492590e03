"""The target interface: everything the generic toolkit needs to know about one service.

The engine, faults, checks and reports are generic: they drive a service over HTTP, put
faults between it and PostgreSQL, and read its `/metrics` (the `service_limit` gauges
and psycopg_pool's figures). What one service's requests, data and invariants are is a
`Target`; `chaos.targets.coupons` is the coupon service's. Another service is one new
module implementing this protocol, given to the CLI (`--target module:attribute`), the
pytest plugin (`--chaos-target`, or a `chaos_target` fixture of the project's own) or
`run_selection(target=...)`.

What the engine does with it, per scenario: `create_key` the keys the workload contends
on; `operate` in the workload; after the run `read_state` of those keys from the settled
database and judge it: acknowledged writes `present` (the lost-writes policy), timed-out
writes absent when the scenario asks, and the target's own invariants (`check`).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from chaos.core.checks import CheckResult
from chaos.core.history import Operation
from chaos.errors import ScenarioError
from chaos.faults.base import FaultFactory
from chaos.infra.postgres import PostgresAdmin

__all__ = ["DEFAULT_TARGET", "Target", "load_target"]

DEFAULT_TARGET = "chaos.targets.coupons:COUPONS"
"""The target the CLI and the plugin configure when none is named: this repository's
service."""


@runtime_checkable
class Target(Protocol):
    """One service under test: its keyed operations, its data and its invariants."""

    @property
    def name(self) -> str:
        """Short name, for reports."""

    @property
    def application_name(self) -> str:
        """The `application_name` of the service's database sessions (pg_stat_activity)."""

    @property
    def service_command(self) -> Sequence[str]:
        """The argv that runs the service (local and HA stacks start it); it reads its
        settings from the environment, as the service of this repository does."""

    @property
    def settings_names(self) -> Collection[str]:
        """The environment variables the service reads its settings from: a stack drops
        inherited values of these, so only the settings it passes apply."""

    @property
    def write_kinds(self) -> frozenset[str]:
        """The operation kinds that write (their effects are looked for in the state)."""

    @property
    def scenario_files(self) -> Sequence[Path]:
        """Scenario files of this target's own, run with the shipped catalogue."""

    def create_key(self, service: httpx.Client, name: str) -> str:
        """Create one key the workload contends on, large enough for any run."""

    async def operate(
        self, client: httpx.AsyncClient, actor: str, key: str, *, clock_zero: float
    ) -> Operation:
        """Send one operation by `actor` on `key`; client-side errors are recorded."""

    def read_state(self, admin: PostgresAdmin, keys: Sequence[str]) -> object:
        """What the database holds for `keys` (opaque to the toolkit)."""

    def present(self, state: object, op: Operation) -> bool:
        """Whether the write `op` is in `state`."""

    def check(self, state: object, operations: Sequence[Operation]) -> list[CheckResult]:
        """The target's own invariants over the history and the state."""

    def lock_key(self, admin: PostgresAdmin, key: str) -> AbstractContextManager[None]:
        """Hold the row lock every operation on `key` needs, until exit."""

    def fault_kinds(self) -> Mapping[str, FaultFactory]:
        """Fault kinds only this target knows (scenario files name them like any other)."""


def load_target(spec: str) -> Target:
    """The target an import path names: `module:attribute` (an instance, or a class that
    takes no arguments); ScenarioError naming what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ScenarioError(f"target {spec!r}: expected module:attribute")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(f"target {spec!r}: {exc}") from exc
    target = found() if isinstance(found, type) else found
    if not isinstance(target, Target):
        raise ScenarioError(f"target {spec!r} is not a Target (chaos.targets.base): {target!r}")
    return target
