"""Admission by time (pure bookkeeping of app.admission)."""

from __future__ import annotations

import pytest

from app.admission import EWMA_WEIGHT, Admission

POOL = 4
ACQUIRE = 1.0
DEADLINE = 3.0


def admission(max_waiting: int = 10_000) -> Admission:
    return Admission(
        pool_size=POOL, acquire_timeout=ACQUIRE, max_waiting=max_waiting, max_unit_seconds=DEADLINE
    )


def test_a_burst_that_drains_in_time_is_admitted_whatever_its_size() -> None:
    adm = admission()
    adm.record_unit(0.0005)  # half a millisecond per claim
    # 5,000 ahead drain in 5,000 x 0.5 ms / 4 = 0.63 s: inside the acquire timeout.
    adm.waiting = 5_000
    assert adm.estimated_wait() == pytest.approx(5_001 * 0.0005 / POOL)
    assert adm.refuse() is None
    assert adm.refusals == {"time": 0, "memory_guard": 0}


def test_a_queue_that_cannot_drain_in_time_refuses_newcomers_at_once() -> None:
    adm = admission()
    adm.record_unit(0.1)  # slow units: 40 ahead take 40 x 0.1 / 4 = 1.0 s
    adm.waiting = 39
    assert adm.refuse() is None
    adm.waiting = 40
    refusal = adm.refuse()
    assert refusal is not None
    assert refusal.reason == "time"
    assert refusal.estimated_wait == pytest.approx(41 * 0.1 / POOL)
    assert "40 requests waiting" in refusal.describe(ACQUIRE, 10_000)
    assert adm.refusals["time"] == 1


def test_nobody_waiting_means_admitted_even_after_a_fault() -> None:
    adm = admission()
    adm.record_unit(DEADLINE)
    adm.waiting = 0
    assert adm.refuse() is None


def test_the_memory_guard_caps_waiters_whatever_the_estimate() -> None:
    adm = admission(max_waiting=100)
    adm.record_unit(0.00001)
    adm.waiting = 100
    refusal = adm.refuse()
    assert refusal is not None
    assert refusal.reason == "memory_guard"
    assert adm.refusals == {"time": 0, "memory_guard": 1}


def test_unit_time_is_a_moving_average_clamped_to_the_deadline() -> None:
    adm = admission()
    assert adm.unit_seconds == 0.0
    adm.record_unit(0.001)
    assert adm.unit_seconds == pytest.approx(0.001)
    adm.record_unit(100.0)  # abandoned work: counted as the deadline at most
    assert adm.unit_seconds == pytest.approx(0.001 + EWMA_WEIGHT * (DEADLINE - 0.001))
    for _ in range(200):
        adm.record_unit(0.001)
    assert adm.unit_seconds == pytest.approx(0.001, rel=1e-3)
    adm.record_unit(-1.0)
    assert adm.unit_seconds >= 0.0
