"""Sold-out collapsing: one claim statement that saw a coupon sold out answers everyone
who was already queued for it.

In a flash sale the stock goes in the first few milliseconds and thousands of claims are
still queued for a pool connection; each would spend a round trip under the coupon's row
lock to learn what the first one learnt. A claim statement sent at time `s` that found the
coupon sold out observed that at some moment after `s`; any claim that arrived before `s`
and is still unanswered has that moment inside its own lifetime, and stock never grows, so
answering it "out of stock" without a query is what it would have seen (linearizable). A
claim that arrived after `s` still asks the database.

Pure bookkeeping on monotonic times the callers pass; bounded in size.
"""

from __future__ import annotations

__all__ = ["SoldOutBoard"]


class SoldOutBoard:
    """Per coupon, the latest send time of a claim statement that found it sold out."""

    def __init__(self, *, horizon: float, max_entries: int = 10_000) -> None:
        #: No request lives longer than this (the request deadline): older entries can go.
        self.horizon = horizon
        self.max_entries = max_entries
        self._sent: dict[str, float] = {}
        #: Claims answered from the board instead of a query.
        self.collapsed = 0

    def record(self, coupon: str, sent_at: float) -> None:
        """A claim statement sent at `sent_at` found `coupon` sold out."""
        if sent_at > self._sent.get(coupon, float("-inf")):
            self._sent[coupon] = sent_at
        if len(self._sent) > self.max_entries:
            self._prune(now=sent_at)

    def answers(self, coupon: str, arrived_at: float) -> bool:
        """Whether a claim that arrived at `arrived_at` is answered "out of stock" already."""
        seen = self._sent.get(coupon)
        if seen is None or seen < arrived_at:
            return False
        self.collapsed += 1
        return True

    def _prune(self, *, now: float) -> None:
        oldest = now - self.horizon
        self._sent = {k: v for k, v in self._sent.items() if v >= oldest}
        while len(self._sent) > self.max_entries:  # all recent: drop the oldest
            del self._sent[min(self._sent, key=self._sent.__getitem__)]

    def __len__(self) -> int:
        return len(self._sent)
