"""Admission to the pool by time, not by count (DESIGN section 4).

A flash sale is a burst: thousands of claims arrive in the same second and queue for a
pool of a few connections. Whether a newcomer can be served depends on how long the queue
ahead of it takes to drain, not on how long the queue is: 5,000 claims of a quarter of a
millisecond each drain faster than 50 claims stuck behind a lock. So a newcomer is refused
at once only when the work already queued cannot finish within the acquire timeout:

    estimated wait = (waiting + 1) x recent time per unit of work / pool size

The time per unit is an exponentially weighted moving average of how long units of work
held their connection (acquire to release), each sample clamped to the request deadline
(work abandoned at the deadline keeps its slot only while it cleans up). With nobody
waiting a newcomer is always admitted, so the estimate keeps learning even after a fault
made it large. A cap on waiters remains, only as a memory guard.

Pure bookkeeping: no I/O, no clock of its own (callers pass durations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EWMA_WEIGHT", "Admission", "Refusal"]

#: Weight of the newest sample in the moving average of the time per unit of work.
EWMA_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a newcomer was turned away, with the figures that decided it."""

    reason: Literal["time", "memory_guard"]
    waiting: int
    estimated_wait: float

    def describe(self, acquire_timeout: float, max_waiting: int) -> str:
        """A log line for the refusal, with its numbers."""
        if self.reason == "memory_guard":
            return f"{self.waiting} requests already waiting (memory guard {max_waiting})"
        return (
            f"{self.waiting} requests waiting would take {self.estimated_wait:.3f} s to drain, "
            f"over the acquire timeout of {acquire_timeout:.2f} s"
        )


class Admission:
    """Decides, per newcomer, whether the pool can serve it within the acquire timeout."""

    def __init__(
        self,
        *,
        pool_size: int,
        acquire_timeout: float,
        max_waiting: int,
        max_unit_seconds: float,
    ) -> None:
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.max_waiting = max_waiting
        self.max_unit_seconds = max_unit_seconds
        #: Requests waiting for a connection now.
        self.waiting = 0
        #: Recent time a unit of work held its connection (seconds); 0 until measured.
        self.unit_seconds = 0.0
        #: Refusals so far, by reason.
        self.refusals: dict[str, int] = {"time": 0, "memory_guard": 0}

    def estimated_wait(self, waiting: int | None = None) -> float:
        """Seconds a newcomer behind `waiting` requests (default: now) would wait."""
        ahead = self.waiting if waiting is None else waiting
        return (ahead + 1) * self.unit_seconds / self.pool_size

    def refuse(self) -> Refusal | None:
        """None when a newcomer may join the queue now, else why not (counted)."""
        if self.waiting == 0:
            return None
        if self.max_waiting and self.waiting >= self.max_waiting:
            refusal = Refusal("memory_guard", self.waiting, self.estimated_wait())
        else:
            estimate = self.estimated_wait()
            if estimate <= self.acquire_timeout:
                return None
            refusal = Refusal("time", self.waiting, estimate)
        self.refusals[refusal.reason] += 1
        return refusal

    def record_unit(self, seconds: float) -> None:
        """Learn from one unit of work that held a connection for `seconds`."""
        sample = min(max(seconds, 0.0), self.max_unit_seconds)
        if self.unit_seconds == 0.0:
            self.unit_seconds = sample
        else:
            self.unit_seconds += EWMA_WEIGHT * (sample - self.unit_seconds)
