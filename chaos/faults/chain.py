"""Faults in a row: a scenario's `fault:` list, injected in order and removed in reverse,
and the condition a chain may wait for between two faults."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace

from chaos.errors import ScenarioError
from chaos.faults.base import Fault, FaultContext
from chaos.infra.waiting import wait_for

__all__ = ["AwaitSuccesses", "FaultChain"]


@dataclass(frozen=True)
class FaultChain(Fault):
    """Several faults, injected one after the other and removed in reverse order; every
    one injected is removed, even when a later one failed."""

    faults: tuple[Fault, ...]

    def __post_init__(self) -> None:
        if not self.faults:
            raise ScenarioError("a fault chain needs at least one fault")

    @classmethod
    def of(cls, faults: Sequence[Fault]) -> Fault:
        """The chain, or the one fault when there is one."""
        return faults[0] if len(faults) == 1 else cls(tuple(faults))

    @property
    def kind(self) -> str:
        return " then ".join(f.kind for f in self.faults)

    def inject(self, ctx: FaultContext) -> None:
        for fault in self.faults:
            # Each fault keeps its own resources; checks, notes, events are shared.
            own = replace(ctx, resources=ExitStack())
            # Registered before inject: remove is idempotent and undoes a partial inject.
            ctx.resources.callback(fault.remove, own)
            fault.inject(own)

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()


@dataclass(frozen=True)
class AwaitSuccesses(Fault):
    """A step of a chain: wait until `count` operations sent after it began succeeded.

    Bounded by the request deadline per operation the workload can have in flight
    (`timeout_deadlines`), so a stuck service fails the wait instead of hanging it.
    """

    count: int
    timeout_deadlines: int = 30

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count: expected a positive integer, got {self.count!r}")

    @property
    def kind(self) -> str:
        return f"{self.count} successes"

    def inject(self, ctx: FaultContext) -> None:
        since = ctx.now()

        def enough() -> bool:
            ok = [op for op in ctx.workload.operations() if op.status == 200 and op.start >= since]
            return len(ok) >= self.count

        wait_for(
            enough,
            timeout=self.timeout_deadlines * ctx.limits.request_deadline,
            what=f"{self.count} successes",
            interval=0.05,
        )
