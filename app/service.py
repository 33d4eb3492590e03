"""The service's operations: each one unit of work on one pooled connection."""

from __future__ import annotations

import time

import psycopg.errors

from app import repository
from app.db import Conn, Database, WorkState
from app.errors import (
    AlreadyClaimed,
    CouponExists,
    CouponNotFound,
    OutOfStock,
    RememberedOutOfStock,
    ServiceError,
)
from app.repository import ClaimOutcome, CouponRow
from app.soldout import SoldOutBoard

__all__ = ["CouponService"]


class CouponService:
    """Create, read and claim coupons; never oversell, one claim per user and coupon."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sold_out = SoldOutBoard(
            horizon=db.settings.request_deadline, trust=db.settings.sold_out_trust
        )

    async def create(self, name: str, amount: int) -> None:
        """Create a coupon with its stock; CouponExists when the name is taken."""

        async def work(conn: Conn, state: WorkState) -> None:
            state.write_attempted = True
            try:
                await repository.insert_coupon(conn, name, amount)
            except psycopg.errors.UniqueViolation as exc:
                raise CouponExists from exc

        await self.db.run(work)
        # Deleted by SQL and created anew: what the memory knew of the name is void.
        self.sold_out.forget(name)

    async def get(self, name: str) -> CouponRow:
        """The coupon with its claimers in claim order; CouponNotFound when absent."""

        async def work(conn: Conn, state: WorkState) -> CouponRow:
            row = await repository.get_coupon(conn, name)
            if row is None:
                raise CouponNotFound
            return row

        return await self.db.run(work)

    async def claim(self, user_id: str, coupon_name: str) -> None:
        """Claim one unit for the user.

        Stock is checked before the duplicate check: a sold-out coupon answers OutOfStock
        even to a user who holds a claim on it. A coupon a statement recently found sold
        out is answered from the sold-out memory (app/soldout.py) at arrival: no
        admission, no slot, no query.
        """

        arrived = time.monotonic()
        if self.sold_out.sold_out_at_arrival(coupon_name, arrived):
            raise RememberedOutOfStock

        async def work(conn: Conn, state: WorkState) -> None:
            # Queued behind a statement that found the coupon sold out: that is the answer.
            if self.sold_out.answers(coupon_name, arrived):
                raise RememberedOutOfStock
            state.write_attempted = True
            sent = time.monotonic()
            try:
                outcome, left = await repository.claim(conn, user_id, coupon_name)
            except psycopg.errors.UniqueViolation as exc:
                raise AlreadyClaimed from exc
            if outcome is not ClaimOutcome.NO_COUPON:
                # Of the claims queued for it, at most `left` + 1 still take a unit each.
                self.db.learn_stock(coupon_name, left)
            if outcome is ClaimOutcome.OUT_OF_STOCK:
                self.sold_out.record(coupon_name, sent, time.monotonic())
                # Everyone still queued for this coupon who arrived before `sent` has
                # the same answer: wake them all now, not one connection at a time.
                self.sold_out.collapsed += self.db.dismiss(
                    coupon_name, stamped_at_most=sent, error=RememberedOutOfStock
                )
                raise OutOfStock
            if outcome is ClaimOutcome.NO_COUPON:
                raise CouponNotFound

        await self.db.run(work, tag=coupon_name, stamp=arrived)

    async def healthy(self, timeout: float) -> bool:
        """Whether one round trip succeeds within `timeout` seconds."""

        async def work(conn: Conn, state: WorkState) -> None:
            await repository.ping(conn)

        try:
            await self.db.run(work, deadline=time.monotonic() + timeout)
        except ServiceError:
            return False
        return True
