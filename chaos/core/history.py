"""The history of client operations and its outcome classes (Jepsen's vocabulary).

An operation is one request of the workload: a `kind` and a `key` of the target's
choosing, sent by an `actor` (unique per operation in a workload, so a target can use it
as the writer's identity). Its outcome class says what a client may conclude:

- ok:   200/201; the write must exist.
- fail: 400/404/409/413, and a 503 raised before any statement ran (`X-Write-Attempted:
        false`); the write must not exist.
- info: 504, a 503 after statements ran, 500, and client-side errors; the write may or
        may not exist.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["History", "Operation", "Outcome", "classify", "percentile"]


class Outcome(StrEnum):
    """What a client may conclude from an answer."""

    OK = "ok"
    FAIL = "fail"
    INFO = "info"


def classify(status: int | None, *, write_attempted: str | None = None) -> Outcome:
    """The outcome class of an answer; `status` None is a client-side error."""
    if status == 200 or status == 201:
        return Outcome.OK
    if status in (400, 404, 409, 413):
        return Outcome.FAIL
    if status == 503 and write_attempted == "false":
        return Outcome.FAIL
    return Outcome.INFO


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request: times are seconds on the run's monotonic clock."""

    kind: str
    actor: str
    key: str
    start: float
    end: float
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    write_attempted: str | None = None

    @property
    def outcome(self) -> Outcome:
        """The outcome class of this operation."""
        return classify(self.status, write_attempted=self.write_attempted)

    @property
    def latency(self) -> float:
        """Seconds from send to answer (or to the client-side error)."""
        return self.end - self.start

    @property
    def label(self) -> str:
        """Status code as text, or the client-side error's kind."""
        return str(self.status) if self.status is not None else f"client:{self.error}"


@dataclass
class History:
    """Every operation of a run, in completion order."""

    operations: list[Operation] = field(default_factory=list)

    def add(self, op: Operation) -> None:
        """Record one operation."""
        self.operations.append(op)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Percentile `q` (1..99) of `values` by the inclusive method (linear interpolation
    between order statistics, as numpy's default); None when there are none. The one
    percentile of the toolkit and the benchmarks."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
