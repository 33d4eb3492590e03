"""Faults in a row (a scenario's `fault:` list): order, undo, marks, and the events a
fault leaves on the run clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest

from chaos.faults.base import IN_EFFECT, OVER, Fault, FaultContext
from chaos.faults.chain import FaultChain


@dataclass(frozen=True)
class Step(Fault):
    name: str
    log: list[str] = field(compare=False)
    fail: bool = False

    @property
    def kind(self) -> str:
        return self.name

    def inject(self, ctx: FaultContext) -> None:
        self.log.append(f"+{self.name}")
        ctx.resources.callback(self.log.append, f"~{self.name}")  # this fault's own
        ctx.in_effect()
        if self.fail:
            raise RuntimeError(f"{self.name} failed")
        ctx.mark(self.name)

    def remove(self, ctx: FaultContext) -> None:
        ctx.resources.close()
        self.log.append(f"-{self.name}")


def context() -> FaultContext:
    none = cast(Any, None)
    return FaultContext(
        stack=none,
        toxiproxy=none,
        admin=none,
        limits=none,
        workload=none,
        keys=[],
        run_id="r",
        # /metrics of a service with no pool counters (a schedule reads them per step)
        service=httpx.Client(
            base_url="http://service", transport=httpx.MockTransport(lambda _: httpx.Response(200))
        ),
        lock_key=none,
        clock_zero=time.monotonic(),
    )


def test_a_chain_injects_in_order_and_removes_in_reverse() -> None:
    log: list[str] = []
    chain = FaultChain.of([Step("a", log), Step("b", log)])
    ctx = context()
    chain.inject(ctx)
    chain.remove(ctx)
    assert log == ["+a", "+b", "~b", "-b", "~a", "-a"]
    assert chain.kind == "a then b"
    assert set(ctx.events) == {IN_EFFECT, "a", "b"}
    assert ctx.events[IN_EFFECT] <= ctx.events["a"] <= ctx.events["b"]  # the first counts


def test_a_failed_step_still_undoes_every_step_injected() -> None:
    log: list[str] = []
    chain = FaultChain.of([Step("a", log), Step("b", log, fail=True), Step("c", log)])
    ctx = context()
    with pytest.raises(RuntimeError, match="b failed"):
        chain.inject(ctx)
    chain.remove(ctx)
    assert log == ["+a", "+b", "~b", "-b", "~a", "-a"]


def test_one_fault_is_not_wrapped() -> None:
    one = Step("a", [])
    assert FaultChain.of([one]) is one


def test_over_keeps_the_last_mark_and_in_effect_the_first() -> None:
    ctx = context()
    first = ctx.in_effect()
    ctx.in_effect(time.monotonic() + 5)
    assert ctx.events[IN_EFFECT] == first
    ctx.over(ctx.clock_zero + 1.0)
    ctx.over(ctx.clock_zero + 2.0)
    assert ctx.events[OVER] == pytest.approx(2.0)
