"""The sold-out memory against a recorded history: a claim answered from memory is never
followed by a 200 on that coupon unless the stock was raised (by SQL) in between, and a
restock is seen within SOLD_OUT_TRUST.

Closed-loop clients keep claiming one coupon through its sell-out, an operator restocks
it by SQL, and they go on until the new stock sells. Every claim is recorded with the
client's send and answer times; the checks below read only that history and the
database, so they hold at any machine speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from chaos.core.bounds import SLACK
from chaos.core.limits import Limits
from chaos.infra.postgres import PostgresAdmin
from chaos.infra.probes import read_metrics
from chaos.infra.service import ServiceProcess
from tests.conftest import SERVICE_SETTINGS
from tests.helpers import claims_of, remaining_of

pytestmark = pytest.mark.stress

COUPON = "MEMORY"
STOCK = 5
RESTOCK = 5
CLIENTS = 8
#: Memory answers to see before the restock (so the check below is never vacuous).
MEMORY_ANSWERS_BEFORE_RESTOCK = 20
#: A hang guard for each phase, not a speed figure.
HANG_GUARD = 60.0
TRUST = float(SERVICE_SETTINGS["SOLD_OUT_TRUST"])


@dataclass(frozen=True, slots=True)
class Op:
    user_id: str
    sent: float
    done: float
    status: int
    from_memory: bool


def _claim_until(url: str, history: list[Op], done: Callable[[], bool], prefix: str) -> None:
    """CLIENTS closed-loop clients claim COUPON, each with fresh user ids, until `done()`
    (or HANG_GUARD seconds)."""
    stop_at = time.monotonic() + HANG_GUARD

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=HANG_GUARD) as http:
            n = 0
            while not done() and time.monotonic() < stop_at:
                user = f"{prefix}-{k}-{n}"
                n += 1
                sent = time.monotonic()
                resp = await http.post(
                    "/api/coupons/claim", json={"user_id": user, "coupon_name": COUPON}
                )
                history.append(
                    Op(
                        user,
                        sent,
                        time.monotonic(),
                        resp.status_code,
                        resp.headers.get("x-answered-from") == "memory",
                    )
                )
                if resp.status_code == 400:
                    assert resp.json() == {"error": "coupon out of stock"}

    async def clients() -> None:
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))

    asyncio.run(clients())


def test_no_memory_answer_hides_stock_and_a_restock_is_seen_within_the_trust(
    service: ServiceProcess, client: httpx.Client, db: PostgresAdmin
) -> None:
    limits = Limits.from_metrics(read_metrics(client))
    assert client.post("/api/coupons", json={"name": COUPON, "amount": STOCK}).status_code == 201
    history: list[Op] = []

    _claim_until(
        service.url,
        history,
        lambda: sum(op.from_memory for op in history) >= MEMORY_ANSWERS_BEFORE_RESTOCK,
        "a",
    )
    assert sum(op.from_memory for op in history) >= MEMORY_ANSWERS_BEFORE_RESTOCK

    restock_started = time.monotonic()
    db.query(
        "UPDATE coupons SET amount = amount + %s, remaining_amount = remaining_amount + %s "
        "WHERE name = %s",
        (RESTOCK, RESTOCK, COUPON),
    )
    restock_done = time.monotonic()

    sold = STOCK + RESTOCK
    _claim_until(service.url, history, lambda: sum(op.status == 200 for op in history) >= sold, "b")

    assert {op.status for op in history} <= {200, 400}
    assert all(op.status == 400 for op in history if op.from_memory)
    # No 200 follows a memory answer on this coupon without a restock in between.
    memory_done = [op.done for op in history if op.from_memory]
    for op in history:
        if op.status == 200 and op.sent > min(memory_done):
            assert op.done > restock_started, f"{op} followed a memory answer, no restock"
    # The restock is seen within the trust: the observation that answers from memory was
    # read at the latest one request deadline after the restock and is trusted TRUST
    # more; the claim that then asks the database is answered within its deadline.
    first_after = min(op.done for op in history if op.status == 200 and op.sent > restock_done)
    bound = restock_done + 2 * limits.request_deadline + TRUST + SLACK
    assert first_after <= bound, f"restock seen {first_after - restock_done:.2f} s later"
    # The database holds exactly the 200s.
    winners = sorted(op.user_id for op in history if op.status == 200)
    assert len(winners) == STOCK + RESTOCK
    assert sorted(claims_of(db, COUPON)) == winners
    assert remaining_of(db, COUPON) == 0
