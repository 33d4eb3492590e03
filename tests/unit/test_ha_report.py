"""The HA timeline picture renders from a synthetic run (pure drawing, no cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.checks.base import CheckResult
from chaos.checks.lost_writes import LostWritePolicy, find_lost_writes
from chaos.report.ha import ha_timeline_png, primary_spans, write_ha_index
from chaos.run.ha import HaVerdict
from chaos.run.ha_monitor import RoleSample
from chaos.run.history import Operation
from chaos.targets.coupons import CouponState


def testprimary_spans_follow_the_samples() -> None:
    samples = [
        RoleSample(0.0, 0.1, "n1", "primary"),
        RoleSample(0.0, 0.1, "n2", "replica"),
        RoleSample(2.0, 2.1, "n1", None),
        RoleSample(5.0, 5.1, "n2", "primary"),
    ]
    spans = primary_spans(samples, 8.0)
    assert spans == {"n1": [(0.1, pytest.approx(2.0))], "n2": [(5.1, pytest.approx(2.9))]}


def test_the_timeline_is_a_png_with_lost_writes_and_events() -> None:
    ops = [
        Operation("claim", f"u{i}", "C", start=i * 0.1, end=i * 0.1 + 0.05, status=status)
        for i, status in enumerate([200] * 10 + [503] * 30 + [200] * 10)
    ]
    state = CouponState(amounts={"C": 100}, remaining={"C": 95}, claims=[])
    report = find_lost_writes(ops, state, policy=LostWritePolicy.expected_at_most(20))
    verdict = HaVerdict(
        checks=[CheckResult("x", True, "")],
        lost_writes=report,
        events={"crash": 1.0, "promotion": 4.0, "recovery": 4.05},
    )
    samples = [RoleSample(0.0, 0.0, "n1", "primary"), RoleSample(4.0, 4.0, "n2", "primary")]
    png = ha_timeline_png("synthetic", ops, verdict, samples, ["n1", "n2"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_index_lists_every_record_with_its_checks_and_lost_writes(tmp_path: Path) -> None:
    record = {
        "scenario": "async-failover-promoted",
        "passed": True,
        "checks": [{"name": "lost-writes", "passed": True, "detail": "1 of 2 lost"}],
        "events": {"crash": 1.0},
        "lost_writes": {
            "policy": "expected, at most 1",
            "lost": [{"user_id": "u<1>", "coupon": "C", "answered_at": 0.5, "node": "node1"}],
        },
    }
    (tmp_path / "async-failover-promoted.json").write_text(json.dumps(record))
    page = write_ha_index(tmp_path).read_text()
    assert "async-failover-promoted: PASS" in page
    assert "u&lt;1&gt;" in page
    assert "0.500 s" in page
    assert "async-failover-promoted.png" in page
