"""The slot gate in front of the pool (app.gate): FIFO, timeouts, dismissal in groups."""

from __future__ import annotations

import asyncio

import pytest

from app.gate import SlotGate

#: Long enough never to fire in these tests unless a test means it to.
FOREVER = 60.0


class Dismissed(Exception):
    pass


def test_slots_are_handed_out_first_in_first_out() -> None:
    async def main() -> list[int]:
        gate = SlotGate(1)
        await gate.acquire(FOREVER)
        order: list[int] = []

        async def waiter(k: int) -> None:
            await gate.acquire(FOREVER)
            order.append(k)
            gate.release()

        tasks = [asyncio.create_task(waiter(k)) for k in range(5)]
        await asyncio.sleep(0)  # let every waiter queue
        assert gate.pending == 5
        gate.release()
        await asyncio.gather(*tasks)
        assert gate.pending == 0
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_a_waiter_times_out_and_the_slot_goes_to_the_next() -> None:
    async def main() -> None:
        gate = SlotGate(1)
        await gate.acquire(FOREVER)
        with pytest.raises(TimeoutError):
            await gate.acquire(0.01)
        assert gate.pending == 0
        late = asyncio.create_task(gate.acquire(FOREVER))
        await asyncio.sleep(0)
        gate.release()
        await late  # granted, not lost to the one that timed out
        gate.release()
        await gate.acquire(0.0 + FOREVER)  # free again: taken at once

    asyncio.run(main())


def test_dismissal_wakes_only_the_tagged_waiters_stamped_early_enough() -> None:
    async def main() -> None:
        gate = SlotGate(1)
        await gate.acquire(FOREVER)
        early = [asyncio.create_task(gate.acquire(FOREVER, tag="HOT", stamp=t)) for t in (1, 2)]
        late = asyncio.create_task(gate.acquire(FOREVER, tag="HOT", stamp=5))
        other = asyncio.create_task(gate.acquire(FOREVER, tag="COLD", stamp=1))
        await asyncio.sleep(0)
        assert gate.dismiss("HOT", stamped_at_most=3, error=Dismissed) == 2
        for task in early:
            with pytest.raises(Dismissed):
                await task
        assert gate.pending == 2
        gate.release()  # the next in line is `late`, then `other`
        await late
        gate.release()
        await other
        gate.release()
        assert gate.pending == 0

    asyncio.run(main())


def test_a_granted_waiter_cancelled_before_it_runs_passes_its_slot_on() -> None:
    async def main() -> None:
        gate = SlotGate(1)
        await gate.acquire(FOREVER)
        first = asyncio.create_task(gate.acquire(FOREVER))
        second = asyncio.create_task(gate.acquire(FOREVER))
        await asyncio.sleep(0)
        gate.release()  # granted to `first`...
        first.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, timeout=FOREVER)

    asyncio.run(main())
