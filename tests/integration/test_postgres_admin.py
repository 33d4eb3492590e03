"""PostgresAdmin against a real PostgreSQL: finding the backend a lock holder blocks.

The compose run of `connection-drop-mid-transaction` found two service backends waiting
on a lock with the claim's query text: the victim (waiting for the held claim) and a
workload claim waiting on another claim's row lock. `blocked_by` must pick the victim.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from chaos.infra.postgres import PostgresAdmin
from chaos.targets.coupons import COUPONS, hold_claim

CLAIM = (
    "WITH taken AS (UPDATE coupons SET remaining_amount = remaining_amount - 1"
    " WHERE name = %s AND remaining_amount > 0 RETURNING name)"
    " INSERT INTO claims (user_id, coupon_name) SELECT %s, name FROM taken"
)
#: Bound on each wait for a backend to block (the statements block at once).
WAIT = 10.0


@contextmanager
def blocked_claim(url: str, application_name: str, coupon: str, user: str) -> Iterator[int]:
    """A claim in a thread of its own, expected to block; yields its backend pid."""
    conn = psycopg.connect(url, autocommit=True, application_name=application_name)
    done = threading.Event()

    def run() -> None:
        try:
            conn.execute(CLAIM, (coupon, user))
        except psycopg.Error:
            pass  # rolled back or terminated: either way it stopped blocking
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    try:
        pid = conn.info.backend_pid
        thread.start()
        yield pid
    finally:
        if not done.wait(timeout=0.1):
            conn.cancel_safe()  # still blocked (its blocker is released after us)
        thread.join(timeout=WAIT)
        assert done.is_set(), "a blocked claim never finished"
        conn.close()


def test_blocked_by_picks_the_victim_among_lock_waiters_with_the_same_query(
    db: PostgresAdmin,
) -> None:
    db.query(
        "INSERT INTO coupons (name, amount, remaining_amount)"
        " VALUES ('victim', 10, 10), ('busy', 10, 10)"
    )
    row_holder = psycopg.connect(db.url, application_name="row-lock-holder")
    try:
        # A workload-like claim waits on the row lock another transaction holds on `busy`.
        row_holder.execute("UPDATE coupons SET remaining_amount = 9 WHERE name = 'busy'")
        with (
            blocked_claim(db.url, COUPONS.application_name, "busy", "bystander") as bystander,
            hold_claim(db, "victim-user", "victim") as holder,
            blocked_claim(db.url, COUPONS.application_name, "victim", "victim-user") as victim,
        ):
            both = db.wait_for_backend(
                timeout=WAIT, wait_event_type="Lock", query_contains="INSERT INTO claims", count=2
            )
            assert {b.pid for b in both} == {bystander, victim}
            (found,) = db.wait_for_backend(
                timeout=WAIT,
                wait_event_type="Lock",
                query_contains="INSERT INTO claims",
                blocked_by=holder,
            )
            assert found.pid == victim
            assert holder in found.blocked_by
            assert holder not in next(b for b in both if b.pid == bystander).blocked_by
    finally:
        row_holder.close()
