"""The fault interface and what a fault may act on.

A fault is injected with `inject(ctx)` and always undone with `remove(ctx)` (the engine
calls it in `finally`). Faults that target one request send it through `ctx.workload` so
it is recorded, and add checks of their own to `ctx.checks`. Evidence that the fault
acted goes to `ctx.evidence` (the `fault-observed` check reads it with the history).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from chaos.checks.base import CheckResult
from chaos.checks.probes import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.run.workload import LiveWorkload

if TYPE_CHECKING:
    from chaos.targets.base import Target

__all__ = ["Fault", "FaultContext"]


@dataclass
class FaultContext:
    """What a fault may act on during one scenario run."""

    stack: Stack
    toxiproxy: ToxiproxyClient
    admin: PostgresAdmin
    limits: Limits
    target: Target
    workload: LiveWorkload
    keys: list[str]
    """The keys (coupons) the workload contends on."""
    run_id: str
    service: httpx.Client
    create_key: Callable[[str, int], str]
    """Make a key of the run's own: (suffix, amount) -> name."""
    checks: list[CheckResult] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    """What the fault saw itself do (backends terminated, ...), for `fault-observed`."""
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
