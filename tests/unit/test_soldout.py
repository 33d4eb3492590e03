"""Sold-out collapsing (pure bookkeeping of app.soldout)."""

from __future__ import annotations

from app.soldout import SoldOutBoard


def test_only_claims_that_arrived_before_the_statement_was_sent_are_answered() -> None:
    board = SoldOutBoard(horizon=3.0)
    assert not board.answers("HOT", arrived_at=1.0)
    board.record("HOT", sent_at=5.0)
    assert board.answers("HOT", arrived_at=4.9)
    assert board.answers("HOT", arrived_at=5.0)
    assert not board.answers("HOT", arrived_at=5.1)  # may postdate a re-created coupon
    assert not board.answers("OTHER", arrived_at=0.0)
    assert board.collapsed == 2


def test_the_latest_send_time_wins() -> None:
    board = SoldOutBoard(horizon=3.0)
    board.record("HOT", sent_at=5.0)
    board.record("HOT", sent_at=4.0)  # an older statement answering late
    assert board.answers("HOT", arrived_at=4.5)
    board.record("HOT", sent_at=6.0)
    assert board.answers("HOT", arrived_at=5.5)


def test_the_board_stays_bounded() -> None:
    board = SoldOutBoard(horizon=1.0, max_entries=100)
    for i in range(1_000):
        board.record(f"C{i}", sent_at=float(i) / 1000)  # all within the horizon
    assert len(board) <= 100
    assert board.answers("C999", arrived_at=0.5)
    for i in range(200):
        board.record(f"LATER{i}", sent_at=10.0 + i)  # the old ones fall out of the horizon
    assert len(board) <= 100
    assert not board.answers("C999", arrived_at=0.0)
