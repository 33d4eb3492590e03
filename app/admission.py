"""Admission to the pool by time, not by count (docs/design.md, "Failure contract").

A flash sale is a burst: thousands of claims arrive in the same second and queue for a
pool of a few connections. Whether a newcomer can be served depends on how long the queue
ahead of it takes to drain, not on how long the queue is: 5,000 claims of a quarter of a
millisecond each drain faster than 50 claims stuck behind a lock. So a newcomer is refused
at once only when the work already queued cannot finish within the acquire timeout:

    estimated wait = (units ahead + 1) x recent time per unit of work / pool size

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

The units ahead are the waiters, except that the waiters of one coupon whose stock a
recent claim reported (within the same window) count at most stock + 1: the first `stock`
of them can take a unit each, the next finds the coupon sold out and answers all those
queued before it without a connection (app/soldout.py). Stock never grows, so the figure
is an upper bound: on a loaded machine, where every unit is slow, 5,000 claims queued for
the last 50 units of a coupon are not refused as 5,000 units of work.

Pure bookkeeping: no I/O, no clock of its own (callers pass durations).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_SAMPLES", "MAX_STOCK_ENTRIES", "Admission", "Refusal"]

#: Most recent units of work kept for the median.
MAX_SAMPLES = 256
#: Most coupons whose recently reported stock is kept (the oldest go first).
MAX_STOCK_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a newcomer was turned away, with the figures that decided it."""

    reason: Literal["time", "memory_guard"]
    waiting: int
    estimated_wait: float
    #: Of the waiting, the units of work that may still need a connection.
    ahead: int

    def describe(self, acquire_timeout: float, max_waiting: int) -> str:
        """A log line for the refusal, with its numbers."""
        if self.reason == "memory_guard":
            return f"{self.waiting} requests already waiting (memory guard {max_waiting})"
        return (
            f"{self.waiting} requests waiting ({self.ahead} units of work ahead) would take "
            f"{self.estimated_wait:.3f} s to drain, "
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
        #: Of those, the units of work that may still need a connection (module docstring).
        self.ahead = 0
        self._waiting_by_tag: dict[Hashable, int] = {}
        #: Per tag, (when, stock) of its latest report, oldest report first.
        self._stock: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()
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
        self._forget_stock(older_than=now - self.window)
        return (self.ahead + 1) * self.unit_seconds(now) / self.pool_size

    def join(self, tag: Hashable | None = None) -> None:
        """A request starts waiting for a connection (its work carries `tag`, if any)."""
        self.waiting += 1
        if tag is None:
            self.ahead += 1
            return
        waiting = self._waiting_by_tag.get(tag, 0)
        self._waiting_by_tag[tag] = waiting + 1
        self._recount(tag, waiting, waiting + 1)

    def leave(self, tag: Hashable | None = None) -> None:
        """A request stops waiting (granted, dismissed, timed out or gone)."""
        self.waiting -= 1
        if tag is None:
            self.ahead -= 1
            return
        waiting = self._waiting_by_tag[tag]
        if waiting == 1:
            del self._waiting_by_tag[tag]
        else:
            self._waiting_by_tag[tag] = waiting - 1
        self._recount(tag, waiting, waiting - 1)

    def learn_stock(self, tag: Hashable, stock: int, now: float) -> None:
        """A unit of work of `tag` finished at `now` and reported `stock` left."""
        self._set_stock(tag, (now, max(stock, 0)))
        if len(self._stock) > MAX_STOCK_ENTRIES:
            self._set_stock(next(iter(self._stock)), None)

    def _counted(self, tag: Hashable, waiting: int) -> int:
        known = self._stock.get(tag)
        return waiting if known is None else min(waiting, known[1] + 1)

    def _recount(self, tag: Hashable, before: int, after: int) -> None:
        self.ahead += self._counted(tag, after) - self._counted(tag, before)

    def _set_stock(self, tag: Hashable, report: tuple[float, int] | None) -> None:
        waiting = self._waiting_by_tag.get(tag, 0)
        before = self._counted(tag, waiting)
        if report is None:
            del self._stock[tag]
        else:
            self._stock[tag] = report
            self._stock.move_to_end(tag)
        self.ahead += self._counted(tag, waiting) - before

    def _forget_stock(self, *, older_than: float) -> None:
        while self._stock:
            tag, (when, _) = next(iter(self._stock.items()))
            if when >= older_than:
                return
            self._set_stock(tag, None)

    def refuse(self, now: float) -> Refusal | None:
        """None when a newcomer may join the queue now, else why not (counted)."""
        if self.waiting == 0:
            return None
        estimate = self.estimated_wait(now)
        reason: Literal["time", "memory_guard"]
        if self.max_waiting and self.waiting >= self.max_waiting:
            reason = "memory_guard"
        elif estimate > self.acquire_timeout:
            reason = "time"
        else:
            return None
        self.refusals[reason] += 1
        return Refusal(reason, self.waiting, estimate, self.ahead)

    def record_unit(self, seconds: float, now: float) -> None:
        """Learn from one unit of work, finished at `now`, that held a connection `seconds`."""
        self.record_units(seconds, now, count=1)

    def record_units(self, seconds: float, now: float, *, count: int) -> None:
        """Learn from `count` units of work that each held a connection `seconds`."""
        sample = (now, min(max(seconds, 0.0), self.max_unit_seconds))
        self._samples.extend([sample] * min(count, MAX_SAMPLES))
        if count:
            self._median = None
