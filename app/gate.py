"""The queue in front of the pool: one slot per connection, first in first out, and
waiters that can be dismissed in groups.

asyncio.Semaphore would do for the slots, but a flash sale needs one more thing: when a
claim statement finds the coupon sold out, the thousands of claims of that coupon queued
behind it have their answer (app/soldout.py). Handing them a slot one by one would take
one event-loop turn per pool connection each; dismissing them wakes them all in one turn.
A waiter costs a future and a timer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["SlotGate"]


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[None]
    tag: Hashable | None
    stamp: float


class SlotGate:
    """`size` slots handed out first in first out; waiters carry a tag and a time stamp."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._queue: deque[_Waiter] = deque()
        self._tagged: dict[Hashable, dict[int, _Waiter]] = {}
        #: Waiters neither granted, dismissed nor gone.
        self.pending = 0

    async def acquire(
        self, timeout: float, *, tag: Hashable | None = None, stamp: float = 0.0
    ) -> None:
        """Take a slot within `timeout` seconds (TimeoutError), or raise the dismissal's error."""
        if self._free > 0 and self.pending == 0:
            self._free -= 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), tag, stamp)
        self._queue.append(waiter)
        if tag is not None:
            self._tagged.setdefault(tag, {})[id(waiter)] = waiter
        self.pending += 1
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except BaseException:
            future = waiter.future
            if future.cancelled():
                self.pending -= 1  # gone while still pending
            elif future.exception() is None:
                self.release()  # granted just as it gave up: pass the slot on
            raise
        finally:
            if tag is not None:
                group = self._tagged.get(tag)
                if group is not None:
                    group.pop(id(waiter), None)
                    if not group:
                        del self._tagged[tag]

    def release(self) -> None:
        """Give a slot back: to the first pending waiter, else to the free count."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                self.pending -= 1
                waiter.future.set_result(None)
                return
        self._free += 1

    def dismiss(
        self,
        tag: Hashable,
        *,
        stamped_at_most: float,
        error: Callable[[], BaseException],
    ) -> int:
        """Fail every pending waiter of `tag` stamped at or before `stamped_at_most` with a
        fresh `error()`; return how many."""
        dismissed = 0
        for waiter in self._tagged.get(tag, {}).values():
            if not waiter.future.done() and waiter.stamp <= stamped_at_most:
                self.pending -= 1
                waiter.future.set_exception(error())
                dismissed += 1
        return dismissed
