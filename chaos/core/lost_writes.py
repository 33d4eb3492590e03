"""Lost writes as a first-class result: acknowledged writes the settled database lacks.

A write answered 200 was acknowledged: the client was told it is durable. After a
failover the new primary may lack it (asynchronous replication, Jepsen's "lost
writes"). The report lists every such write one by one: actor, key, when the answer
came (run clock) and which node had committed it (the last one seen primary). A
scenario declares its policy:

- forbidden (the default): no acknowledged write may be lost;
- at most N: lost writes are expected, N of them at most;
- between two events: exactly the writes sent after the first and acknowledged before
  the second are lost (those a
  cut-off standby never received), at least N of them, each committed by the node that
  was primary when the first event happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chaos.core.checks import CheckResult, sample
from chaos.core.history import Operation

__all__ = ["LostWrite", "LostWritePolicy", "LostWriteReport", "find_lost_writes"]


@dataclass(frozen=True, slots=True)
class LostWrite:
    """One acknowledged write missing from the settled database."""

    actor: str
    key: str
    answered_at: float
    node: str | None
    """The node last seen primary when the answer came, which committed the write
    (None: unknown, or a single-node stack)."""

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {
            "actor": self.actor,
            "key": self.key,
            "answered_at": round(self.answered_at, 3),
            "node": self.node,
        }


@dataclass(frozen=True, slots=True)
class LostWritePolicy:
    """What a scenario allows (see the module docstring)."""

    max_lost: int = 0
    between: tuple[str, str] | None = None
    at_least: int = 0

    @classmethod
    def forbidden(cls) -> LostWritePolicy:
        """No acknowledged write may be lost."""
        return cls()

    @classmethod
    def expected_at_most(cls, max_lost: int) -> LostWritePolicy:
        """Lost writes are the expected truth, at most `max_lost` of them."""
        return cls(max_lost=max_lost)

    @classmethod
    def expected_between(cls, first: str, last: str, *, at_least: int) -> LostWritePolicy:
        """Exactly the writes acknowledged between events `first` and `last` are lost."""
        return cls(between=(first, last), at_least=at_least)

    def describe(self) -> str:
        """The policy in words."""
        if self.between is not None:
            return (
                f"exactly those acknowledged between {self.between[0]} and {self.between[1]}, "
                f"at least {self.at_least}"
            )
        return "forbidden" if self.max_lost == 0 else f"expected, at most {self.max_lost}"


@dataclass(frozen=True, slots=True)
class LostWriteReport:
    """The lost writes of a run, and the policy's verdict on them."""

    lost: tuple[LostWrite, ...]
    acknowledged: int
    policy: LostWritePolicy
    passed: bool
    verdict: str
    """Why the policy passed or failed, with numbers."""

    def check(self) -> CheckResult:
        """The report as one check (every lost write named in the detail)."""
        names = "; ".join(
            f"{w.actor}/{w.key} answered at {w.answered_at:.3f} s by {w.node or '?'}"
            for w in self.lost
        )
        return CheckResult(
            "lost-writes",
            self.passed,
            f"{len(self.lost)} of {self.acknowledged} acknowledged writes lost (policy: "
            f"{self.policy.describe()}; {self.verdict})" + (f": {names}" if names else ""),
        )

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {
            "policy": self.policy.describe(),
            "acknowledged": self.acknowledged,
            "passed": self.passed,
            "verdict": self.verdict,
            "lost": [w.as_dict() for w in self.lost],
        }


def find_lost_writes(
    acknowledged: Sequence[Operation],
    present: Callable[[Operation], bool],
    *,
    policy: LostWritePolicy,
    events: Mapping[str, float] | None = None,
    primary_at: Callable[[float], str | None] = lambda _: None,
) -> LostWriteReport:
    """Every acknowledged write that `present` (the settled state) lacks, judged."""
    ordered = sorted(acknowledged, key=lambda o: o.end)
    lost = tuple(
        LostWrite(op.actor, op.key, op.end, primary_at(op.end)) for op in ordered if not present(op)
    )
    if policy.between is None:
        passed = len(lost) <= policy.max_lost
        verdict = f"{len(lost)} lost, at most {policy.max_lost} allowed"
    else:
        first, last = policy.between
        times = events or {}
        if first not in times or last not in times:
            missing = sorted({first, last} - set(times))
            return LostWriteReport(
                lost, len(ordered), policy, False, f"events {missing} never happened"
            )
        start, end = times[first], times[last]
        at_stake = {(op.actor, op.key) for op in ordered if start <= op.start and op.end < end}
        got = {(w.actor, w.key) for w in lost}
        owner = primary_at(start)
        strangers = [w for w in lost if w.node != owner]
        passed = got == at_stake and len(got) >= policy.at_least and not strangers
        verdict = (
            f"{len(at_stake)} acknowledged between {first} ({start:.2f} s) and {last} "
            f"({end:.2f} s) by {owner}; lost but not at stake: "
            f"{sample(sorted(got - at_stake)) or 'none'}; at stake but kept: "
            f"{sample(sorted(at_stake - got)) or 'none'}; lost writes another node committed: "
            f"{len(strangers)}"
        )
    return LostWriteReport(lost, len(ordered), policy, passed, verdict)
