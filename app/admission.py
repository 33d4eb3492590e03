"""Admission to the pool by time, not by count (DESIGN section 4).

A flash sale is a burst: thousands of claims arrive in the same second and queue for a
pool of a few connections. Whether a newcomer can be served depends on how long the queue
ahead of it takes to drain, not on how long the queue is: 5,000 claims of a quarter of a
millisecond each drain faster than 50 claims stuck behind a lock. So a newcomer is refused
at once only when the work already queued cannot finish within the acquire timeout:

    estimated wait = (waiting + 1) x recent time per unit of work / pool size

The time per unit is the median of how long the units of work finished in the last
`window` seconds held their connection (acquire to release), each sample clamped to the
request deadline (work abandoned at the deadline keeps its slot only while it cleans up).
A median, because a burst's first units are stretched by the event loop still parsing the
burst (they would make a mean refuse claims that drain in time), and its last ones are
answered from the sold-out board without a connection (units of no time); a window,
because an estimate learnt before a quiet spell says nothing about now (no recent
sample: admit). With nobody
waiting a newcomer is always admitted, so the estimate keeps learning even after a fault
made it large. A cap on waiters remains, only as a memory guard.

Pure bookkeeping: no I/O, no clock of its own (callers pass durations).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_SAMPLES", "Admission", "Refusal"]

#: Most recent units of work kept for the median.
MAX_SAMPLES = 256


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
        window: float,
    ) -> None:
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self.max_waiting = max_waiting
        self.max_unit_seconds = max_unit_seconds
        #: Units finished longer ago than this (seconds) no longer count.
        self.window = window
        #: Requests waiting for a connection now.
        self.waiting = 0
        #: Refusals so far, by reason.
        self.refusals: dict[str, int] = {"time": 0, "memory_guard": 0}
        self._samples: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)
        self._median: float | None = None

    def unit_seconds(self, now: float) -> float:
        """Median time a recent unit of work held its connection; 0 when none is recent."""
        oldest = now - self.window
        while self._samples and self._samples[0][0] < oldest:
            self._samples.popleft()
            self._median = None
        if not self._samples:
            return 0.0
        if self._median is None:
            ordered = sorted(seconds for _, seconds in self._samples)
            self._median = ordered[len(ordered) // 2]
        return self._median

    def estimated_wait(self, now: float) -> float:
        """Seconds a newcomer behind the requests waiting now would wait."""
        return (self.waiting + 1) * self.unit_seconds(now) / self.pool_size

    def refuse(self, now: float) -> Refusal | None:
        """None when a newcomer may join the queue now, else why not (counted)."""
        if self.waiting == 0:
            return None
        if self.max_waiting and self.waiting >= self.max_waiting:
            refusal = Refusal("memory_guard", self.waiting, self.estimated_wait(now))
        else:
            estimate = self.estimated_wait(now)
            if estimate <= self.acquire_timeout:
                return None
            refusal = Refusal("time", self.waiting, estimate)
        self.refusals[refusal.reason] += 1
        return refusal

    def record_unit(self, seconds: float, now: float) -> None:
        """Learn from one unit of work, finished at `now`, that held a connection `seconds`."""
        self.record_units(seconds, now, count=1)

    def record_units(self, seconds: float, now: float, *, count: int) -> None:
        """Learn from `count` units of work that each held a connection `seconds`."""
        sample = (now, min(max(seconds, 0.0), self.max_unit_seconds))
        self._samples.extend([sample] * min(count, MAX_SAMPLES))
        if count:
            self._median = None
