"""Admission by time (pure bookkeeping of app.admission)."""

from __future__ import annotations

import pytest

from app import admission as admission_module
from app.admission import MAX_SAMPLES, Admission

POOL = 4
ACQUIRE = 1.0
DEADLINE = 3.0
WINDOW = 2.0
NOW = 1_000.0


def admission(max_waiting: int = 10_000) -> Admission:
    return Admission(
        pool_size=POOL,
        acquire_timeout=ACQUIRE,
        max_waiting=max_waiting,
        max_unit_seconds=DEADLINE,
        window=WINDOW,
    )


def set_waiting(adm: Admission, n: int, tag: str | None = None) -> None:
    """Make `n` requests of `tag` wait (or stop waiting), through join and leave."""
    while adm.waiting < n:
        adm.join(tag)
    while adm.waiting > n:
        adm.leave(tag)


def test_a_burst_that_drains_in_time_is_admitted_whatever_its_size() -> None:
    adm = admission()
    adm.record_unit(0.0005, NOW)  # half a millisecond per claim
    # 5,000 ahead drain in 5,000 x 0.5 ms / 4 = 0.63 s: inside the acquire timeout.
    set_waiting(adm, 5_000)
    assert adm.estimated_wait(NOW) == pytest.approx(5_001 * 0.0005 / POOL)
    assert adm.refuse(NOW) is None
    assert adm.refusals == {"time": 0, "memory_guard": 0}


def test_a_queue_that_cannot_drain_in_time_refuses_newcomers_at_once() -> None:
    adm = admission()
    adm.record_unit(0.1, NOW)  # slow units: 40 ahead take 40 x 0.1 / 4 = 1.0 s
    set_waiting(adm, 39)
    assert adm.refuse(NOW) is None
    set_waiting(adm, 40)
    refusal = adm.refuse(NOW)
    assert refusal is not None
    assert refusal.reason == "time"
    assert refusal.estimated_wait == pytest.approx(41 * 0.1 / POOL)
    assert "40 requests waiting" in refusal.describe(ACQUIRE, 10_000)
    assert adm.refusals["time"] == 1


def test_nobody_waiting_means_admitted_even_after_a_fault() -> None:
    adm = admission()
    adm.record_unit(DEADLINE, NOW)
    set_waiting(adm, 0)
    assert adm.refuse(NOW) is None


def test_the_memory_guard_caps_waiters_whatever_the_estimate() -> None:
    adm = admission(max_waiting=100)
    adm.record_unit(0.00001, NOW)
    set_waiting(adm, 100)
    refusal = adm.refuse(NOW)
    assert refusal is not None
    assert refusal.reason == "memory_guard"
    assert adm.refusals == {"time": 0, "memory_guard": 1}


def test_the_unit_time_is_the_median_of_recent_units_clamped_to_the_deadline() -> None:
    adm = admission()
    assert adm.unit_seconds(NOW) == 0.0
    for seconds in (0.001, 0.002, 100.0):  # abandoned work: counted as the deadline at most
        adm.record_unit(seconds, NOW)
    assert adm.unit_seconds(NOW) == pytest.approx(0.002)
    adm.record_unit(-1.0, NOW)
    adm.record_unit(-1.0, NOW)
    assert adm.unit_seconds(NOW) == pytest.approx(0.001)


def test_a_few_stretched_units_do_not_refuse_a_burst() -> None:
    # The first units of a burst wait for the event loop to finish parsing it.
    adm = admission()
    for _ in range(10):
        adm.record_unit(0.5, NOW)
    for _ in range(30):
        adm.record_unit(0.0002, NOW)
    set_waiting(adm, 4_000)
    assert adm.refuse(NOW) is None


def test_units_older_than_the_window_no_longer_count() -> None:
    adm = admission()
    adm.record_unit(DEADLINE, NOW)
    set_waiting(adm, 10)
    assert adm.refuse(NOW) is not None
    later = NOW + WINDOW + 0.001
    assert adm.unit_seconds(later) == 0.0
    assert adm.refuse(later) is None
    adm.record_unit(0.001, later)
    assert adm.unit_seconds(later) == pytest.approx(0.001)


def test_only_the_most_recent_units_are_kept() -> None:
    adm = admission()
    for _ in range(MAX_SAMPLES):
        adm.record_unit(2.0, NOW)
    for _ in range(MAX_SAMPLES // 2 + 1):
        adm.record_unit(0.001, NOW)
    assert adm.unit_seconds(NOW) == pytest.approx(0.001)


def test_dismissed_waiters_count_as_units_of_no_time() -> None:
    adm = admission()
    for _ in range(10):
        adm.record_unit(0.5, NOW)  # the burst's first claims, stretched by the event loop
    adm.record_units(0.0, NOW, count=4_950)  # the rest answered sold out at once
    assert adm.unit_seconds(NOW) == 0.0
    set_waiting(adm, 5_000)
    assert adm.refuse(NOW) is None
    adm.record_units(0.0, NOW, count=0)
    assert adm.unit_seconds(NOW) == 0.0


def test_waiters_of_a_coupon_with_known_stock_count_at_most_stock_plus_one() -> None:
    # A loaded machine: 20 ms a claim. 5,000 claims of one coupon would take 25 s as
    # units, but its last claim reported 49 left: at most 50 of them take a unit.
    adm = admission()
    adm.record_unit(0.02, NOW)
    set_waiting(adm, 5_000, "HOT")
    assert adm.refuse(NOW) is not None
    adm.learn_stock("HOT", 49, NOW)
    assert (adm.waiting, adm.ahead) == (5_000, 50)
    assert adm.estimated_wait(NOW) == pytest.approx(51 * 0.02 / POOL)
    assert adm.refuse(NOW) is None
    # Other waiters count in full, and a waiter of the coupon beyond the cap adds nothing.
    set_waiting(adm, 5_010, "COLD")
    assert adm.ahead == 60
    adm.join("HOT")
    assert adm.ahead == 60
    # Sold out: one more unit finds it so and answers the rest.
    adm.learn_stock("HOT", 0, NOW)
    assert adm.ahead == 11


def test_the_count_follows_waiters_leaving_below_the_cap() -> None:
    adm = admission()
    adm.learn_stock("HOT", 2, NOW)
    set_waiting(adm, 5, "HOT")
    assert adm.ahead == 3
    set_waiting(adm, 2, "HOT")
    assert adm.ahead == 2
    set_waiting(adm, 0, "HOT")
    assert adm.ahead == 0
    adm.learn_stock("HOT", 1, NOW)  # a report with nobody waiting changes nothing
    assert adm.ahead == 0


def test_a_stock_report_older_than_the_window_no_longer_caps() -> None:
    # Stock never grows, but a coupon may be created again under its name.
    adm = admission()
    adm.learn_stock("HOT", 0, NOW)
    set_waiting(adm, 100, "HOT")
    assert adm.ahead == 1
    later = NOW + WINDOW + 0.001
    adm.record_unit(0.001, later)
    adm.estimated_wait(later)
    assert adm.ahead == 100


def test_stock_reports_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission_module, "MAX_STOCK_ENTRIES", 3)
    adm = admission()
    for i in range(5):
        set_waiting(adm, 10 * (i + 1), f"C{i}")
        adm.learn_stock(f"C{i}", 0, NOW)
    # The two oldest reports went: their 10 waiters each count in full again.
    assert adm.ahead == 10 + 10 + 1 + 1 + 1
