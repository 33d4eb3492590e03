"""Lost writes as a first-class result: acknowledged claims the settled cluster lacks.

A claim answered 200 was acknowledged: the client was told it is durable. After a
failover the new primary may lack it (asynchronous replication, Jepsen's "lost
writes"). The report lists every such claim one by one: user, coupon, when the answer
came (run clock) and which node had committed it (the last one seen primary). A
scenario declares its policy: lost writes forbidden (the default), or expected, at most
some number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chaos.checks.base import CheckResult
from chaos.run.history import Operation, Outcome
from chaos.targets.coupons import CouponState

__all__ = ["LostWrite", "LostWritePolicy", "LostWriteReport", "find_lost_writes"]


@dataclass(frozen=True, slots=True)
class LostWrite:
    """One acknowledged claim missing from the settled cluster."""

    user_id: str
    coupon: str
    answered_at: float
    node: str | None
    """The node last seen primary when the answer came, which committed the claim
    (None: unknown)."""

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {
            "user_id": self.user_id,
            "coupon": self.coupon,
            "answered_at": round(self.answered_at, 3),
            "node": self.node,
        }


@dataclass(frozen=True, slots=True)
class LostWritePolicy:
    """What a scenario allows: none (the default), or expected and at most `max_lost`."""

    expected: bool = False
    max_lost: int = 0

    @classmethod
    def forbidden(cls) -> LostWritePolicy:
        """No acknowledged claim may be lost."""
        return cls()

    @classmethod
    def expected_at_most(cls, max_lost: int) -> LostWritePolicy:
        """Lost writes are the expected truth, at most `max_lost` of them."""
        return cls(expected=True, max_lost=max_lost)

    def allows(self, lost: int) -> bool:
        """Whether `lost` lost writes meet the policy."""
        return lost == 0 if not self.expected else lost <= self.max_lost

    def describe(self) -> str:
        """The policy in words."""
        return "forbidden" if not self.expected else f"expected, at most {self.max_lost}"


@dataclass(frozen=True, slots=True)
class LostWriteReport:
    """The lost writes of a run and the policy they are judged against."""

    lost: tuple[LostWrite, ...]
    acknowledged: int
    policy: LostWritePolicy

    @property
    def passed(self) -> bool:
        """Whether the lost writes meet the policy."""
        return self.policy.allows(len(self.lost))

    def check(self) -> CheckResult:
        """The report as one check (every lost claim named in the detail)."""
        names = "; ".join(
            f"{w.user_id}/{w.coupon} answered at {w.answered_at:.3f} s by {w.node or '?'}"
            for w in self.lost
        )
        return CheckResult(
            "lost-writes",
            self.passed,
            f"{len(self.lost)} of {self.acknowledged} acknowledged claims lost "
            f"(policy: {self.policy.describe()})" + (f": {names}" if names else ""),
        )

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {
            "policy": self.policy.describe(),
            "acknowledged": self.acknowledged,
            "passed": self.passed,
            "lost": [w.as_dict() for w in self.lost],
        }


def find_lost_writes(
    ops: Sequence[Operation],
    state: CouponState,
    *,
    policy: LostWritePolicy,
    primary_at: Callable[[float], str | None] = lambda _: None,
) -> LostWriteReport:
    """Every claim answered 200 that `state` (read from the settled cluster) lacks."""
    present = set(state.claims)
    acknowledged = [op for op in ops if op.kind == "claim" and op.outcome is Outcome.OK]
    lost = tuple(
        LostWrite(op.user_id, op.coupon, op.end, primary_at(op.end))
        for op in sorted(acknowledged, key=lambda o: o.end)
        if (op.user_id, op.coupon) not in present
    )
    return LostWriteReport(lost=lost, acknowledged=len(acknowledged), policy=policy)
