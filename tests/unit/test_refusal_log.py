"""503/504 answers are logged in aggregate (app.answers.RefusalLog), 500s one by one."""

from __future__ import annotations

import logging

import pytest

from app.answers import RefusalLog
from app.errors import PoolExhausted, TimedOut


def test_refusals_are_logged_in_aggregate(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(interval=3600.0)
    with caplog.at_level(logging.WARNING, logger="app.api"):
        for i in range(1_000):
            refusals.note(f"r{i}", "POST", "/api/coupons/claim", PoolExhausted(detail="full"))
        refusals.note("t", "POST", "/api/coupons/claim", TimedOut(detail="late"))
        refusals.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "r0" in lines[0]
    assert lines[1].startswith("1000 more answers of 503/504")
    assert "999 x 503" in lines[1]
    assert "1 x 504" in lines[1]
    assert "r1 " in lines[1]  # the sample
