"""Counts of client connections the HTTP server cut off, by reason (app/server.py writes,
app/metrics.py exports): a module of its own so the metrics need not import the server."""

from __future__ import annotations

from collections import Counter
from typing import Literal, get_args

__all__ = ["CUT_OFF", "CutReason", "cut_off"]

CutReason = Literal[
    "connection_cap", "head_timeout", "body_timeout", "header_too_large", "idle_timeout"
]

#: Connections cut off so far in this process, by reason.
CUT_OFF: Counter[str] = Counter(dict.fromkeys(get_args(CutReason), 0))


def cut_off(reason: CutReason) -> None:
    """Count one connection cut off for `reason`."""
    CUT_OFF[reason] += 1
