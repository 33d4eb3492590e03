"""Backpressure at the HTTP layer: the server reads no more requests than it can serve.

A flash sale is thousands of requests arriving in the same millisecond on thousands of
connections. One event loop serves them all, and the database's answers are read by that
same loop. Were every request parsed as it arrived, the loop would spend seconds parsing
the burst while the answers of the first claims sat unread in their sockets, and the
waiters' acquire timers (which measure wall time) would fire for work that was already
done: 503s from a database that kept up.

So at most `limit` requests are in progress at once (setting HTTP_MAX_IN_PROGRESS:
parsed, and not yet answered). A connection whose next request arrives while the limit is
reached is held: its bytes are kept unparsed, its transport stops reading, and it costs
nothing but those bytes until a request in progress finishes; then held connections are
resumed first in, first out. Every turn of the loop is then bounded by `limit` requests'
worth of work, so the database's answers are read within that, and a waiter times out
only when the database (or the pool) really is too slow.

Only a connection between requests is held: data that belongs to a request already in
progress (the rest of its body) is always read, or that request could wait on itself.

`ReadGate` is the bookkeeping, shared by every connection of the process (`READS`);
app/server.py holds and resumes the connections, app/metrics.py exports the counts.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

__all__ = ["READS", "Holdable", "ReadGate"]


class Holdable(Protocol):
    """A connection the gate can resume."""

    def resume_held(self) -> None:
        """Parse the bytes held back and read on (called once per hold)."""


class ReadGate:
    """Requests in progress across every connection, and the connections held back."""

    def __init__(self, limit: int = 0) -> None:
        #: Most requests in progress at once; 0: no limit.
        self.limit = limit
        #: Requests parsed and not yet finished.
        self.in_progress = 0
        #: Connections held since the process started (a counter).
        self.held_total = 0
        self._held: deque[Holdable] = deque()
        self._resume_scheduled = False

    @property
    def held(self) -> int:
        """Connections held back now (some may have gone since; they are skipped)."""
        return len(self._held)

    def full(self) -> bool:
        """Whether a new request must wait."""
        return 0 < self.limit <= self.in_progress

    def hold(self, conn: Holdable) -> None:
        """Queue `conn` until a request in progress finishes."""
        self._held.append(conn)
        self.held_total += 1

    def started(self) -> None:
        """A request was parsed and its handling started."""
        self.in_progress += 1

    def finished(self) -> None:
        """A request's handling ended (called from its task): held connections resume
        on the loop's next turn, outside that task and its context."""
        self.in_progress -= 1
        if self._held and not self._resume_scheduled:
            self._resume_scheduled = True
            asyncio.get_running_loop().call_soon(self.resume)

    def resume(self) -> None:
        """Resume held connections, first in first out, until the limit is reached.

        A connection that went away while held resumes as a no-op."""
        self._resume_scheduled = False
        while self._held and not self.full():
            self._held.popleft().resume_held()


#: The process's gate; app/server.py sets its limit from the settings.
READS = ReadGate()
