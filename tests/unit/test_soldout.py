"""The sold-out memory (pure bookkeeping of app.soldout)."""

from __future__ import annotations

from app.soldout import SoldOutBoard


def test_only_claims_that_arrived_before_the_statement_was_sent_are_collapsed() -> None:
    board = SoldOutBoard(horizon=3.0, trust=5.0)
    assert not board.answers("HOT", arrived_at=1.0)
    board.record("HOT", sent_at=5.0, seen_at=5.2)
    assert board.answers("HOT", arrived_at=4.9)
    assert board.answers("HOT", arrived_at=5.0)
    assert not board.answers("HOT", arrived_at=5.1)  # sent before it arrived: ask
    assert not board.answers("OTHER", arrived_at=0.0)
    assert board.collapsed == 2


def test_claims_arriving_after_the_answer_was_read_are_answered_within_the_trust() -> None:
    board = SoldOutBoard(horizon=3.0, trust=5.0)
    board.record("HOT", sent_at=5.0, seen_at=5.2)
    assert not board.sold_out_at_arrival("HOT", now=5.1)  # before the answer was read
    assert board.sold_out_at_arrival("HOT", now=5.2)
    assert board.sold_out_at_arrival("HOT", now=10.2)
    assert not board.sold_out_at_arrival("HOT", now=10.3)  # trust spent: ask again
    assert not board.sold_out_at_arrival("OTHER", now=6.0)
    assert board.remembered == 2
    board.record("HOT", sent_at=10.3, seen_at=10.4)  # asked again, still sold out
    assert board.sold_out_at_arrival("HOT", now=15.0)


def test_zero_trust_never_answers_at_arrival() -> None:
    board = SoldOutBoard(horizon=3.0, trust=0.0)
    board.record("HOT", sent_at=5.0, seen_at=5.2)
    assert not board.sold_out_at_arrival("HOT", now=5.3)
    assert board.answers("HOT", arrived_at=4.0)  # collapsing still works


def test_creating_a_coupon_forgets_its_name() -> None:
    board = SoldOutBoard(horizon=3.0, trust=5.0)
    board.record("HOT", sent_at=5.0, seen_at=5.2)
    board.forget("HOT")
    assert not board.sold_out_at_arrival("HOT", now=5.3)
    assert not board.answers("HOT", arrived_at=4.0)


def test_the_latest_times_win() -> None:
    board = SoldOutBoard(horizon=3.0, trust=5.0)
    board.record("HOT", sent_at=5.0, seen_at=5.5)
    board.record("HOT", sent_at=4.0, seen_at=6.0)  # an older statement answering late
    assert board.answers("HOT", arrived_at=4.5)
    assert board.sold_out_at_arrival("HOT", now=10.9)
    board.record("HOT", sent_at=6.0, seen_at=6.1)
    assert board.answers("HOT", arrived_at=5.5)


def test_the_memory_stays_bounded() -> None:
    board = SoldOutBoard(horizon=1.0, trust=1.0, max_entries=100)
    for i in range(1_000):
        board.record(f"C{i}", sent_at=i / 1000, seen_at=i / 1000)  # all recent
    assert len(board) <= 100
    assert board.answers("C999", arrived_at=0.5)
    for i in range(200):
        board.record(f"LATER{i}", sent_at=10.0 + i, seen_at=10.0 + i)  # the old ones age out
    assert len(board) <= 100
    assert not board.answers("C999", arrived_at=0.0)
