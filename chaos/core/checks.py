"""A check's result, and the small helpers every checker uses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CheckResult", "sample"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, whether it passed, and what it saw (with numbers)."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        """Plain dict, for reports."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def sample(items: Iterable[object], n: int = 5) -> str:
    """The first `n` items as text, and how many more there are."""
    items = list(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more
