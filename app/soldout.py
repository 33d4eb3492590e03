"""The sold-out memory: a claim statement that saw a coupon sold out answers the claims
that come after it without a query of their own.

In a flash sale the stock goes in the first few milliseconds, and every later claim of
that coupon would spend a round trip under its row lock (and a pool slot, and a place in
the admission queue) to learn what the first sold-out answer already said. Two rules
use that answer, both linearizable because no API raises a coupon's stock:

- **Queued before it** (collapsing): a claim statement sent at time `s` that found the
  coupon sold out observed that at some moment after `s`. Any claim that arrived before
  `s` and is still unanswered has that moment inside its own lifetime, so "out of stock"
  is what it would have seen. The caller wakes all of them at once (app/gate.py).
- **Arriving after it** (memory): a claim that arrives after the sold-out answer was read
  (time `seen`) arrives when the stock was already zero and can never grow again: it is
  answered "out of stock" at arrival, before admission, a pool slot or a query (its
  linearization point is its arrival).

Only an operator who raises the stock by SQL breaks "never grows". The memory therefore
trusts an observation for `trust` seconds (setting SOLD_OUT_TRUST): a claim arriving
later asks the database again, and a sold-out answer renews the observation. So a restock
by SQL is seen by claims within `trust` seconds, and a sold-out coupon costs at most one
query per `trust` seconds. Creating a coupon through the API forgets its name (it may
have been deleted by SQL and created anew).

What the memory holds: per coupon name, two monotonic times; at most `max_entries` names
(MAX_ENTRIES by default, the least recently seen dropped first), and none older than
`max(trust, horizon)`. A name that falls out only costs its next claim a query.

Pure bookkeeping on monotonic times the callers pass; no I/O, no clock of its own.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["MAX_ENTRIES", "SoldOutBoard"]

#: Most coupon names the memory holds (each two floats and the name: about 200 bytes
#: plus the name's length, so at most a few MB).
MAX_ENTRIES = 10_000


class SoldOutBoard:
    """Per coupon, when the latest statement that found it sold out was sent and read."""

    def __init__(self, *, horizon: float, trust: float, max_entries: int = MAX_ENTRIES) -> None:
        #: No request lives longer than this (the request deadline): older send times
        #: can no longer answer a queued claim.
        self.horizon = horizon
        #: Seconds an observation answers arriving claims (0: never at arrival).
        self.trust = trust
        self.max_entries = max_entries
        #: coupon -> (sent, seen), least recently seen first.
        self._entries: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: Claims answered from a statement sent after they arrived (queued before it).
        self.collapsed = 0
        #: Claims answered at arrival from the memory.
        self.remembered = 0

    def record(self, coupon: str, sent_at: float, seen_at: float) -> None:
        """A claim statement sent at `sent_at` found `coupon` sold out; its answer was
        read at `seen_at`."""
        old = self._entries.get(coupon)
        if old is not None:
            sent_at, seen_at = max(sent_at, old[0]), max(seen_at, old[1])
        self._entries[coupon] = (sent_at, seen_at)
        self._entries.move_to_end(coupon)
        if len(self._entries) > self.max_entries:
            self._prune(now=seen_at)

    def forget(self, coupon: str) -> None:
        """The coupon was created (anew): nothing known about it is true any more."""
        self._entries.pop(coupon, None)

    def answers(self, coupon: str, arrived_at: float) -> bool:
        """Whether a queued claim that arrived at `arrived_at` has its answer already
        (a statement sent after it arrived found the coupon sold out)."""
        entry = self._entries.get(coupon)
        if entry is None or entry[0] < arrived_at:
            return False
        self.collapsed += 1
        return True

    def sold_out_at_arrival(self, coupon: str, now: float) -> bool:
        """Whether a claim arriving `now` is answered "out of stock" from the memory."""
        entry = self._entries.get(coupon)
        if entry is None:
            return False
        seen = entry[1]
        if not seen <= now <= seen + self.trust:
            return False
        self.remembered += 1
        return True

    def _prune(self, *, now: float) -> None:
        oldest = now - max(self.horizon, self.trust)
        while self._entries:
            coupon, (_, seen) = next(iter(self._entries.items()))
            if seen >= oldest and len(self._entries) <= self.max_entries:
                return
            del self._entries[coupon]

    def __len__(self) -> int:
        return len(self._entries)
