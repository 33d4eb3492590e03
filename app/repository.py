"""SQL of the service, and nothing else: every statement parameterized, no transactions here.

Connections are in autocommit mode, so each function's statement is its own transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

__all__ = [
    "CLAIM_SQL",
    "ClaimOutcome",
    "Conn",
    "CouponRow",
    "apply_schema",
    "claim",
    "get_coupon",
    "insert_coupon",
    "ping",
    "schema_sql",
]

Conn = AsyncConnection[TupleRow]


@dataclass(frozen=True, slots=True)
class CouponRow:
    """A coupon with the users who claimed it, in claim order."""

    name: str
    amount: int
    remaining_amount: int
    claimed_by: list[str]


def schema_sql() -> str:
    """The schema file shipped with the package."""
    return resources.files("app").joinpath("schema.sql").read_text(encoding="utf-8")


async def apply_schema(conn: Conn) -> None:
    """Create the tables and indexes when missing; serialised so concurrent starts agree."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('coupon-service schema'))")
        await conn.execute(schema_sql().encode())


async def ping(conn: Conn) -> None:
    """One round trip."""
    await conn.execute("SELECT 1")


async def insert_coupon(conn: Conn, name: str, amount: int) -> None:
    """Insert a coupon with its whole stock; UniqueViolation when the name is taken."""
    await conn.execute(
        "INSERT INTO coupons (name, amount, remaining_amount) VALUES (%s, %s, %s)",
        (name, amount, amount),
    )


# One statement, so one round trip under the hot coupon's row lock, whatever the outcome:
# decrement only while stock remains, insert the claim from the decrement's RETURNING, and
# say whether the coupon exists, so a sold-out claim needs no second query. A unique
# violation aborts the statement and so rolls the decrement back.
CLAIM_SQL = """
WITH taken AS (
    UPDATE coupons SET remaining_amount = remaining_amount - 1
    WHERE name = %(coupon)s AND remaining_amount > 0
    RETURNING name, remaining_amount
), inserted AS (
    INSERT INTO claims (user_id, coupon_name)
    SELECT %(user)s, name FROM taken
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM inserted),
       EXISTS (SELECT 1 FROM coupons WHERE name = %(coupon)s),
       (SELECT remaining_amount FROM taken)
"""


class ClaimOutcome(enum.Enum):
    """What the claim statement did."""

    CLAIMED = "claimed"
    OUT_OF_STOCK = "out of stock"
    NO_COUPON = "no coupon"


async def claim(conn: Conn, user_id: str, coupon_name: str) -> tuple[ClaimOutcome, int]:
    """Take one unit of stock for the user, with the stock left after it (0 unless
    claimed); UniqueViolation when the user holds one."""
    cur = await conn.execute(CLAIM_SQL, {"coupon": coupon_name, "user": user_id})
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - the SELECT always yields one row
        raise RuntimeError("claim statement returned no row")
    claimed, exists, left = row
    if claimed:
        return ClaimOutcome.CLAIMED, int(left)
    return (ClaimOutcome.OUT_OF_STOCK if exists else ClaimOutcome.NO_COUPON), 0


_GET_SQL = """
SELECT c.name, c.amount, c.remaining_amount,
       COALESCE(array_agg(cl.user_id ORDER BY cl.id) FILTER (WHERE cl.id IS NOT NULL), '{}')
FROM coupons c
LEFT JOIN claims cl ON cl.coupon_name = c.name
WHERE c.name = %s
GROUP BY c.name
"""


async def get_coupon(conn: Conn, name: str) -> CouponRow | None:
    """The coupon and its claimers, or None."""
    cur = await conn.execute(_GET_SQL, (name,))
    row = await cur.fetchone()
    if row is None:
        return None
    name_, amount, remaining, claimed_by = row
    return CouponRow(str(name_), int(amount), int(remaining), [str(u) for u in claimed_by])
