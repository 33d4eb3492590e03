"""The fault interface and what a fault may act on.

A fault is injected with `inject(ctx)` and always undone with `remove(ctx)` (the engine
calls it in `finally`). Faults that target one request send it through `ctx.workload` so
it is recorded, and add checks of their own to `ctx.checks`. Evidence that the fault
acted goes to `ctx.evidence` (the `fault-observed` check reads it with the history).

Time: by default the fault is in effect from the end of `inject` to the start of
`remove`. A fault whose effect starts inside `inject` (a power cut, then the wait for a
promotion) marks it with `ctx.in_effect()`; one whose effect on clients ends before its
removal (the promotion ends a failover; the crashed node's restart is housekeeping)
marks that with `ctx.over()`, and recovery is then measured from there. Other moments
worth a line on the timeline are marked with `ctx.mark(event)`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from chaos.core.checks import CheckResult
from chaos.core.limits import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.roles import RoleMonitor
from chaos.infra.stack import Stack
from chaos.infra.toxiproxy import ToxiproxyClient
from chaos.infra.workload import LiveWorkload

__all__ = ["IN_EFFECT", "OVER", "Fault", "FaultContext", "FaultFactory"]

IN_EFFECT = "in-effect"
"""Event: the fault took effect."""
OVER = "over"
"""Event: the fault's effect on clients ended (recovery is measured from here)."""


@dataclass
class FaultContext:
    """What a fault may act on during one scenario run."""

    stack: Stack
    toxiproxy: ToxiproxyClient
    admin: PostgresAdmin
    limits: Limits
    workload: LiveWorkload
    keys: list[str]
    """The keys the workload contends on."""
    run_id: str
    service: httpx.Client
    lock_key: Callable[[PostgresAdmin, str], AbstractContextManager[None]]
    """The target's row lock on one key (held until exit)."""
    clock_zero: float
    """The run clock's zero (time.monotonic())."""
    extra_keys: list[str] = field(default_factory=list)
    """Keys a fault created for itself; the target's invariants check them too."""
    checks: list[CheckResult] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    """What the fault saw itself do (backends terminated, ...), for `fault-observed`."""
    events: dict[str, float] = field(default_factory=dict)
    """Named moments on the run clock (the engine's and the fault's)."""
    resources: ExitStack = field(default_factory=ExitStack)
    roles: RoleMonitor | None = None
    """Which node was primary when (clustered stacks only)."""

    def now(self) -> float:
        """Seconds on the run clock."""
        return time.monotonic() - self.clock_zero

    def key_name(self, suffix: str) -> str:
        """A key name of this run's own."""
        return f"{self.run_id}-{suffix}"

    def mark(self, event: str, at: float | None = None) -> float:
        """Record an event now, or at a `time.monotonic()` reading; its run-clock time."""
        self.events[event] = self.now() if at is None else at - self.clock_zero
        return self.events[event]

    def in_effect(self, at: float | None = None) -> float:
        """The fault took effect (the first call counts; see the module docstring)."""
        if IN_EFFECT not in self.events:
            self.mark(IN_EFFECT, at)
        return self.events[IN_EFFECT]

    def over(self, at: float | None = None) -> float:
        """The fault's effect on clients ended (the last call counts)."""
        return self.mark(OVER, at)


class Fault(ABC):
    """Something that goes wrong, and its undo.

    A kind that `pgchaos explore` may draw declares it in two class attributes:
    `explore`, a mapping of each numeric parameter to `(low, high, mildest)` (`{}` for a
    kind without parameters; None, the default, leaves the kind out), and
    `explore_exclusive`, True when a step of it must not overlap another step. A fault
    the service must hide from clients says so in `hidden`.
    """

    explore: ClassVar[Mapping[str, tuple[float, float, float]] | None] = None
    explore_exclusive: ClassVar[bool] = False
    hidden: ClassVar[bool] = False
    """The service must hide this fault from its clients: as a step of a schedule, alone
    (no other step on, none within the recovery bound before it), every request it
    touches answers 200 (the `hidden-steps` check)."""

    @property
    @abstractmethod
    def kind(self) -> str:
        """Short name of the fault type, for tables."""

    @abstractmethod
    def inject(self, ctx: FaultContext) -> None:
        """Make it go wrong."""

    def remove(self, ctx: FaultContext) -> None:  # noqa: B027 - instantaneous faults have no undo
        """Undo it (idempotent; called even when inject failed)."""


FaultFactory = Callable[..., Fault]
"""What a fault kind is: a callable taking a scenario file's keys, returning a Fault."""
